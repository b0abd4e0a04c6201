/* Subnets, link names and the address allocator with its lease files. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net_internal.h"
#include "orch_util.h"

/* A lease file is two short lines; anything bigger is not ours. */
#define LEASE_MAX 256

int
net__addr_parse (const char *s, uint32_t *out)
{
  struct in_addr a;

  if (s == NULL || inet_pton (AF_INET, s, &a) != 1)
    return -1;
  *out = ntohl (a.s_addr);
  return 0;
}

void
net__addr_format (uint32_t addr, char *buf, size_t len)
{
  snprintf (buf, len, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 0xff, (addr >> 8) & 0xff,
            addr & 0xff);
}

void
net__mac_for_addr (uint32_t addr, uint8_t mac[6])
{
  mac[0] = 0x0a;
  mac[1] = 0x58;
  mac[2] = (uint8_t) (addr >> 24);
  mac[3] = (uint8_t) (addr >> 16);
  mac[4] = (uint8_t) (addr >> 8);
  mac[5] = (uint8_t) addr;
}

int
net__subnet_parse (const char *cidr, net_subnet_t *out, orch_err_t *err)
{
  char ip[INET_ADDRSTRLEN];
  const char *slash;
  char *end;
  long prefix;
  uint32_t addr, mask;

  if (cidr == NULL || *cidr == '\0')
    return orch_err_set (err, EINVAL, "subnet: empty; want a CIDR like 10.88.0.0/24");
  slash = strchr (cidr, '/');
  if (slash == NULL)
    return orch_err_set (err, EINVAL,
                         "subnet \"%s\": no prefix length; want a CIDR like 10.88.0.0/24", cidr);
  if ((size_t) (slash - cidr) >= sizeof ip)
    return orch_err_set (err, EINVAL, "subnet \"%s\": not an IPv4 address", cidr);
  memcpy (ip, cidr, slash - cidr);
  ip[slash - cidr] = '\0';
  if (net__addr_parse (ip, &addr) < 0)
    return orch_err_set (err, EINVAL, "subnet \"%s\": \"%s\" is not an IPv4 address", cidr, ip);
  errno = 0;
  prefix = strtol (slash + 1, &end, 10);
  if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || errno != 0 || prefix < 0 || prefix > 32)
    return orch_err_set (err, EINVAL, "subnet \"%s\": bad prefix length", cidr);
  if (prefix > NET_PREFIX_MAX)
    return orch_err_set (err, EINVAL,
                         "subnet \"%s\": too small; the bridge and at least one workload need "
                         "a prefix of /%d or shorter",
                         cidr, NET_PREFIX_MAX);
  if (prefix < NET_PREFIX_MIN)
    return orch_err_set (err, EINVAL, "subnet \"%s\": too large; use a prefix of /%d or longer",
                         cidr, NET_PREFIX_MIN);
  mask = prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
  if ((addr & ~mask) != 0)
    {
      char base[16];

      net__addr_format (addr & mask, base, sizeof base);
      return orch_err_set (err, EINVAL, "subnet \"%s\": host bits set; did you mean %s/%ld?", cidr,
                           base, prefix);
    }
  out->base = addr;
  out->prefix = (int) prefix;
  return 0;
}

uint32_t
net__subnet_size (const net_subnet_t *sn)
{
  return 1u << (32 - sn->prefix);
}

uint32_t
net__subnet_gateway (const net_subnet_t *sn)
{
  return sn->base + 1;
}

int
net__subnet_contains (const net_subnet_t *sn, uint32_t addr)
{
  return addr - sn->base < net__subnet_size (sn);
}

int
net__alloc_id_valid (const char *id)
{
  size_t i;

  if (id == NULL || id[0] == '\0' || id[0] == '.')
    return 0;
  for (i = 0; id[i] != '\0'; i++)
    {
      char c = id[i];

      if (i >= NET_ALLOC_ID_MAX)
        return 0;
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'
            || c == '_' || c == '.'))
        return 0;
    }
  /* Lease files are written as "<id>.tmp" first. */
  if (i > 4 && strcmp (id + i - 4, ".tmp") == 0)
    return 0;
  return 1;
}

void
net__link_name (const char *prefix, const char *alloc_id, char *out, size_t len)
{
  /* FNV-1a: stable across agent restarts and builds, which a name that
   * detach must find again needs. Collisions are caught by the alias. */
  uint32_t h = 2166136261u;
  const unsigned char *p;

  for (p = (const unsigned char *) alloc_id; *p != '\0'; p++)
    {
      h ^= *p;
      h *= 16777619u;
    }
  snprintf (out, len, "%.7s%08x", prefix, h);
}

/* ---- allocator ---- */

static int
bit_test (const net_ipam_t *ipam, uint32_t i)
{
  return (ipam->bits[i / 64] >> (i % 64)) & 1;
}

static void
bit_set (net_ipam_t *ipam, uint32_t i)
{
  ipam->bits[i / 64] |= (uint64_t) 1 << (i % 64);
}

static void
bit_clear (net_ipam_t *ipam, uint32_t i)
{
  ipam->bits[i / 64] &= ~((uint64_t) 1 << (i % 64));
}

/* The first clear bit at or after `from`, wrapping once; -1 when full. The
 * reserved bits are always set, so a full word skips 64 addresses at once. */
static int64_t
find_free (const net_ipam_t *ipam, uint32_t from)
{
  uint32_t words = (ipam->size + 63) / 64;
  uint32_t w = from / 64, n;
  uint64_t cur = ~ipam->bits[w] & (~(uint64_t) 0 << (from % 64));

  for (n = 0; n <= words; n++)
    {
      if (cur != 0)
        {
          uint32_t i = w * 64 + (uint32_t) __builtin_ctzll (cur);

          if (i < ipam->size)
            return i;
        }
      w = (w + 1) % words;
      cur = ~ipam->bits[w];
    }
  return -1;
}

static char *
lease_path (const net_ipam_t *ipam, const char *alloc_id)
{
  return xasprintf ("%s/%s", ipam->dir, alloc_id);
}

/* Parses a lease file's text: the address, then the link name. */
static int
lease_parse (char *text, uint32_t *addr, char *link, size_t link_len)
{
  char *nl = strchr (text, '\n');
  char *second = NULL;

  if (nl != NULL)
    {
      *nl = '\0';
      second = nl + 1;
      nl = strchr (second, '\n');
      if (nl != NULL)
        *nl = '\0';
    }
  if (net__addr_parse (text, addr) < 0)
    return -1;
  if (link != NULL && link_len > 0)
    snprintf (link, link_len, "%s", second != NULL ? second : "");
  return 0;
}

/* Writes a lease by rename, so a reader sees the old or the new file. No
 * fsync: a lease only matters while its workload's namespace exists, and
 * that does not outlive a machine crash either; a start must stay fast. */
static int
lease_write (const char *path, const char *text)
{
  cleanup_free char *tmp = xasprintf ("%s.tmp", path);
  size_t len = strlen (text);
  ssize_t w;
  int fd, r = 0;

  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0)
    return -errno;
  w = write (fd, text, len);
  if (w < 0)
    r = -errno;
  else if ((size_t) w != len)
    r = -EIO;
  if (close (fd) < 0 && r == 0)
    r = -errno;
  if (r == 0 && rename (tmp, path) < 0)
    r = -errno;
  if (r < 0)
    unlink (tmp);
  return r;
}

static int
lease_read (const net_ipam_t *ipam, const char *alloc_id, uint32_t *addr, char *link,
            size_t link_len)
{
  cleanup_free char *path = lease_path (ipam, alloc_id);
  cleanup_free char *text = NULL;
  size_t len;
  int r;

  r = orch_read_file (path, LEASE_MAX, &text, &len);
  if (r < 0)
    return r;
  if (lease_parse (text, addr, link, link_len) < 0)
    return -EBADMSG;
  return 0;
}

int
net__ipam_open (net_ipam_t *ipam, const char *state_dir, const net_subnet_t *sn, orch_err_t *err)
{
  DIR *d;
  struct dirent *de;
  int r;

  memset (ipam, 0, sizeof *ipam);
  ipam->sn = *sn;
  ipam->size = net__subnet_size (sn);
  ipam->bits = xcalloc ((ipam->size + 63) / 64, sizeof (uint64_t));
  ipam->dir = xasprintf ("%s/net/leases", state_dir);
  /* Network, gateway (the bridge) and broadcast are never leased. */
  bit_set (ipam, 0);
  bit_set (ipam, 1);
  bit_set (ipam, ipam->size - 1);
  ipam->free = ipam->size - 3;
  ipam->cursor = 2;

  r = orch_mkdir_p (ipam->dir, 0755);
  if (r < 0)
    {
      errno = -r;
      orch_err_sys (err, "create lease directory %s", ipam->dir);
      net__ipam_close (ipam);
      return -1;
    }
  d = opendir (ipam->dir);
  if (d == NULL)
    {
      orch_err_sys (err, "open lease directory %s", ipam->dir);
      net__ipam_close (ipam);
      return -1;
    }
  while ((de = readdir (d)) != NULL)
    {
      size_t nlen = strlen (de->d_name);
      uint32_t addr, i;

      /* A leftover of an interrupted write; the lease itself is intact. */
      if (nlen > 4 && strcmp (de->d_name + nlen - 4, ".tmp") == 0 && de->d_name[0] != '.')
        {
          unlinkat (dirfd (d), de->d_name, 0);
          continue;
        }
      if (!net__alloc_id_valid (de->d_name))
        continue;
      if (lease_read (ipam, de->d_name, &addr, NULL, 0) < 0)
        continue;
      if (!net__subnet_contains (sn, addr))
        continue;
      i = addr - sn->base;
      if (bit_test (ipam, i))
        continue;
      bit_set (ipam, i);
      ipam->free--;
      /* Continue after the highest lease, so a restarted agent does not
       * hand out an address that was freed just before it stopped. */
      if (i + 1 > ipam->cursor)
        ipam->cursor = i + 1 < ipam->size ? i + 1 : 2;
    }
  closedir (d);
  return 0;
}

void
net__ipam_close (net_ipam_t *ipam)
{
  free (ipam->bits);
  free (ipam->dir);
  ipam->bits = NULL;
  ipam->dir = NULL;
}

int
net__ipam_get (net_ipam_t *ipam, const char *alloc_id, uint32_t *addr, char *link, size_t link_len,
               orch_err_t *err)
{
  int r;

  if (!net__alloc_id_valid (alloc_id))
    return 0;
  r = lease_read (ipam, alloc_id, addr, link, link_len);
  if (r == -ENOENT)
    return 0;
  if (r < 0)
    return orch_err_set (err, -r, "read lease %s/%s: %s", ipam->dir, alloc_id, strerror (-r));
  return 1;
}

int
net__ipam_acquire (net_ipam_t *ipam, const char *alloc_id, const char *link, uint32_t *addr,
                   int *existed, orch_err_t *err)
{
  cleanup_free char *path = NULL;
  cleanup_free char *text = NULL;
  char a[16];
  int64_t i;
  int r;

  if (!net__alloc_id_valid (alloc_id))
    return orch_err_set (err, EINVAL, "allocation id \"%s\" cannot name a lease", alloc_id);
  r = net__ipam_get (ipam, alloc_id, addr, NULL, 0, err);
  if (r < 0)
    return -1;
  path = lease_path (ipam, alloc_id);
  if (r == 1 && net__subnet_contains (&ipam->sn, *addr))
    {
      *existed = 1;
      net__addr_format (*addr, a, sizeof a);
      text = xasprintf ("%s\n%s\n", a, link != NULL ? link : "");
      r = lease_write (path, text);
      if (r < 0)
        return orch_err_set (err, -r, "write lease %s: %s", path, strerror (-r));
      return 0;
    }
  *existed = 0;
  i = find_free (ipam, ipam->cursor);
  if (i < 0)
    {
      char base[16];

      net__addr_format (ipam->sn.base, base, sizeof base);
      return orch_err_set (err, ENOSPC, "no free address in %s/%d (%u in use)", base,
                           ipam->sn.prefix, ipam->size - 3);
    }
  *addr = ipam->sn.base + (uint32_t) i;
  net__addr_format (*addr, a, sizeof a);
  text = xasprintf ("%s\n%s\n", a, link != NULL ? link : "");
  r = lease_write (path, text);
  if (r < 0)
    return orch_err_set (err, -r, "write lease %s: %s", path, strerror (-r));
  bit_set (ipam, (uint32_t) i);
  ipam->free--;
  ipam->cursor = (uint32_t) i + 1 < ipam->size ? (uint32_t) i + 1 : 2;
  return 0;
}

int
net__ipam_release (net_ipam_t *ipam, const char *alloc_id, orch_err_t *err)
{
  cleanup_free char *path = NULL;
  uint32_t addr;
  int r;

  if (!net__alloc_id_valid (alloc_id))
    return 0;
  path = lease_path (ipam, alloc_id);
  r = lease_read (ipam, alloc_id, &addr, NULL, 0);
  if (r == -ENOENT)
    return 0;
  if (unlink (path) < 0 && errno != ENOENT)
    return orch_err_sys (err, "remove lease %s", path);
  if (r == 0 && net__subnet_contains (&ipam->sn, addr))
    {
      uint32_t i = addr - ipam->sn.base;

      if (i > 1 && i < ipam->size - 1 && bit_test (ipam, i))
        {
          bit_clear (ipam, i);
          ipam->free++;
        }
    }
  return 0;
}
