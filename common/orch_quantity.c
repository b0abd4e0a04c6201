/* Quantities (see orch_quantity.h). Numbers are read as an exact decimal
 * (digits and a scale) and multiplied in 128-bit integers, so "0.1" cores or
 * "1.5Gi" convert without floating-point rounding, and anything that does
 * not come out as a whole unit (1.2345 cores, 0.3 bytes) is refused rather
 * than silently rounded. */
#include "orch_quantity.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef unsigned __int128 orch__u128;

/* Bound on the digits read, far above anything valid, far below overflow. */
#define ORCH__MANT_LIMIT ((orch__u128) 1 << 120)
#define ORCH__SCALE_MAX 36

static bool
orch__isdigit (char c)
{
  return c >= '0' && c <= '9';
}

/* Reads "D+", "D+.D+" or ".D+" at *pp. */
static int
orch__q_number (const char **pp, orch__u128 *mant, int *scale)
{
  const char *p = *pp;
  orch__u128 m = 0;
  int sc = 0, nint = 0, nfrac = 0;

  for (; orch__isdigit (*p); p++, nint++)
    {
      if (m > ORCH__MANT_LIMIT / 10)
        return -ERANGE;
      m = m * 10 + (orch__u128) (*p - '0');
    }
  if (*p == '.')
    {
      p++;
      for (; orch__isdigit (*p); p++, nfrac++)
        {
          if (m > ORCH__MANT_LIMIT / 10 || sc >= ORCH__SCALE_MAX)
            return -ERANGE;
          m = m * 10 + (orch__u128) (*p - '0');
          sc++;
        }
      if (nfrac == 0)
        return -EINVAL;
    }
  if (nint + nfrac == 0)
    return -EINVAL;
  /* "1.500" is "1.5": trailing zeros of the fraction add no precision. */
  while (sc > 0 && m % 10 == 0)
    {
      m /= 10;
      sc--;
    }
  *mant = m;
  *scale = sc;
  *pp = p;
  return 0;
}

/* mant * 10^-scale * mult, exactly; -EINVAL when not a whole number. */
static int
orch__q_apply (orch__u128 mant, int scale, orch__u128 mult, orch__u128 *out)
{
  orch__u128 div = 1, prod;
  int i;

  for (i = 0; i < scale; i++)
    div *= 10;
  if (mult != 0 && mant > ((orch__u128) -1) / mult)
    return -ERANGE;
  prod = mant * mult;
  if (prod % div != 0)
    return -EINVAL;
  *out = prod / div;
  return 0;
}

static int
orch__q_store (bool neg, orch__u128 v, int64_t *out)
{
  if (v > (orch__u128) INT64_MAX)
    return -ERANGE;
  *out = neg ? -(int64_t) v : (int64_t) v;
  return 0;
}

static bool
orch__q_sign (const char **pp)
{
  if (**pp == '-')
    {
      (*pp)++;
      return true;
    }
  return false;
}

int
orch_parse_cpu_milli (const char *s, int64_t *out)
{
  const char *p = s;
  orch__u128 mant, v;
  int scale, r;
  bool neg;

  if (s == NULL)
    return -EINVAL;
  neg = orch__q_sign (&p);
  r = orch__q_number (&p, &mant, &scale);
  if (r < 0)
    return r;
  if (*p == 'm')
    {
      p++;
      r = orch__q_apply (mant, scale, 1, &v);
    }
  else
    r = orch__q_apply (mant, scale, 1000, &v);
  if (r < 0)
    return r;
  if (*p != '\0')
    return -EINVAL;
  return orch__q_store (neg, v, out);
}

static const struct
{
  const char *suffix;
  orch__u128 mult;
} orch__mem_suffixes[] = {
  { "Ki", (orch__u128) 1 << 10 },
  { "Mi", (orch__u128) 1 << 20 },
  { "Gi", (orch__u128) 1 << 30 },
  { "Ti", (orch__u128) 1 << 40 },
  { "Pi", (orch__u128) 1 << 50 },
  { "Ei", (orch__u128) 1 << 60 },
  /* Decimal SI, as Kubernetes reads them (note the lower-case k). */
  { "k", 1000 },
  { "M", 1000000 },
  { "G", 1000000000 },
  { "T", (orch__u128) 1000000000000ULL },
  { "P", (orch__u128) 1000000000000000ULL },
  { "E", (orch__u128) 1000000000000000000ULL },
  { "", 1 },
};

int
orch_parse_memory_bytes (const char *s, int64_t *out)
{
  const char *p = s;
  orch__u128 mant, v;
  int scale, r;
  size_t i;
  bool neg;

  if (s == NULL)
    return -EINVAL;
  neg = orch__q_sign (&p);
  r = orch__q_number (&p, &mant, &scale);
  if (r < 0)
    return r;
  for (i = 0; i < sizeof (orch__mem_suffixes) / sizeof (orch__mem_suffixes[0]); i++)
    if (strcmp (p, orch__mem_suffixes[i].suffix) == 0)
      {
        r = orch__q_apply (mant, scale, orch__mem_suffixes[i].mult, &v);
        if (r < 0)
          return r;
        return orch__q_store (neg, v, out);
      }
  return -EINVAL;
}

int
orch_parse_duration_ms (const char *s, int64_t *out)
{
  const char *p = s;
  orch__u128 total = 0;
  bool neg;

  if (s == NULL)
    return -EINVAL;
  neg = orch__q_sign (&p);
  if (strcmp (p, "0") == 0)
    {
      *out = 0;
      return 0;
    }
  if (*p == '\0')
    return -EINVAL;
  while (*p != '\0')
    {
      orch__u128 mant, v, mult;
      int scale, r;

      r = orch__q_number (&p, &mant, &scale);
      if (r < 0)
        return r;
      if (p[0] == 'm' && p[1] == 's')
        {
          mult = 1;
          p += 2;
        }
      else if (p[0] == 's')
        {
          mult = 1000;
          p++;
        }
      else if (p[0] == 'm')
        {
          mult = 60 * 1000;
          p++;
        }
      else if (p[0] == 'h')
        {
          mult = 3600 * 1000;
          p++;
        }
      else
        return -EINVAL;
      r = orch__q_apply (mant, scale, mult, &v);
      if (r < 0)
        return r;
      total += v;
      if (total > (orch__u128) INT64_MAX)
        return -ERANGE;
    }
  return orch__q_store (neg, total, out);
}

const char *
orch_fmt_cpu (int64_t milli, char *buf, int len)
{
  uint64_t a = milli < 0 ? (uint64_t) 0 - (uint64_t) milli : (uint64_t) milli;
  const char *sign = milli < 0 ? "-" : "";

  if (a % 1000 == 0)
    snprintf (buf, len, "%s%llu", sign, (unsigned long long) (a / 1000));
  else if (a < 1000)
    snprintf (buf, len, "%s%llum", sign, (unsigned long long) a);
  else
    {
      unsigned frac = (unsigned) (a % 1000);
      int digits = 3;
      while (frac % 10 == 0)
        {
          frac /= 10;
          digits--;
        }
      snprintf (buf, len, "%s%llu.%0*u", sign, (unsigned long long) (a / 1000), digits, frac);
    }
  return buf;
}

const char *
orch_fmt_memory (int64_t bytes, char *buf, int len)
{
  static const char *const units[] = { "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
  uint64_t a = bytes < 0 ? (uint64_t) 0 - (uint64_t) bytes : (uint64_t) bytes;
  const char *sign = bytes < 0 ? "-" : "";
  int u = -1;

  while (u + 1 < 6 && a >= ((uint64_t) 1 << (10 * (u + 2))))
    u++;
  if (u < 0)
    snprintf (buf, len, "%s%llu", sign, (unsigned long long) a);
  else
    {
      uint64_t unit = (uint64_t) 1 << (10 * (u + 1));
      if (a % unit == 0)
        snprintf (buf, len, "%s%llu%s", sign, (unsigned long long) (a / unit), units[u]);
      else
        {
          /* One decimal, rounded to nearest, in integers. */
          unsigned __int128 tenths = ((unsigned __int128) a * 10 + unit / 2) / unit;
          snprintf (buf, len, "%s%llu.%u%s", sign, (unsigned long long) (tenths / 10),
                    (unsigned) (tenths % 10), units[u]);
        }
    }
  return buf;
}
