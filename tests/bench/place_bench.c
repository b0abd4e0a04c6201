/* place_bench: the placement engine at scale, against a plain first-fit
 * baseline on the same input in the same process.
 *
 *   place_bench [--nodes N] [--workloads W] [--seed S] [--fill F] [--batch B]
 *               [--tenants T] [--spread] [--nodes-csv FILE] [--workloads-csv FILE]
 *               [--placements-out FILE] [--baseline-out FILE] [--inputs-out PREFIX]
 *               [--no-baseline] [--json]
 *
 * Synthetic input (default 10,000 nodes, 100,000 workloads, seed 1): five
 * node shapes (4c/16G, 8c/32G, 16c/64G, 8c/64G, 32c/64G), a fifth of the
 * nodes without a microVM backend, zone and disk labels; services with a
 * heavy-tailed replica count and size (Pareto) and a memory/cpu ratio from
 * 1 to 11 MiB per millicore, 75% containers, 10% microVMs, 15% auto (a
 * third of them untrusted), eight tenants (Zipf-like), 12% with a label
 * constraint; sizes scaled so that the demand is --fill (0.6) of the
 * cluster on its binding dimension. The engine places them in batches of
 * --batch; first fit places them one by one in input order.
 *
 * Figures: placements/s over the engine's calls, per-placement latency
 * p50/p99 (timestamps taken between consecutive placements inside a batch
 * through the engine's on_placed hook), nodes used vs a lower bound from
 * total demand, utilisation of the used nodes, unplaced count, and the
 * engine's heap memory (malloc statistics around building and placing). */
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "orch_spec.h"
#include "orch_util.h"
#include "place.h"
#include "place_input.h"

#define MiB (1024LL * 1024)
#define BENCH_OVERHEAD_MIB 64

typedef struct bench_fig_s
{
  double secs, per_s, p50_us, p99_us, max_us;
  size_t used, lower, unplaced, placed, microvms;
  double cpu_util, mem_util, over_pct;
  const char *binding;
  long long mem_bytes;
} bench_fig_t;

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static long long
heap_bytes (void)
{
  struct mallinfo2 mi = mallinfo2 ();
  return (long long) (mi.uordblks + mi.hblkhd);
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static void
percentiles (double *lat, size_t n, bench_fig_t *f)
{
  if (n == 0)
    return;
  qsort (lat, n, sizeof (double), cmp_double);
  f->p50_us = lat[n / 2] * 1e6;
  f->p99_us = lat[(size_t) ((double) n * 0.99)] * 1e6;
  f->max_us = lat[n - 1] * 1e6;
}

/* Lower bound on nodes: the fewest nodes whose capacity (largest first)
 * covers the demand, on each dimension separately; the larger count. */
static size_t
lower_bound (const pin_set_t *s, double dem_cpu, double dem_mem)
{
  size_t n = s->n_nodes;
  double *c = malloc (n * sizeof (double)), *m = malloc (n * sizeof (double));
  for (size_t i = 0; i < n; i++)
    {
      c[i] = -(double) s->nodes[i].cpu_milli;
      m[i] = -(double) s->nodes[i].memory_mib;
    }
  qsort (c, n, sizeof (double), cmp_double);
  qsort (m, n, sizeof (double), cmp_double);
  size_t kc = 0, km = 0;
  double acc = 0;
  while (kc < n && acc < dem_cpu)
    acc -= c[kc++];
  acc = 0;
  while (km < n && acc < dem_mem)
    acc -= m[km++];
  free (c);
  free (m);
  return kc > km ? kc : km;
}

/* Figures from a placement (node index per workload, -1 = none). */
static void
tally (const pin_set_t *s, const int32_t *node, const int *iso, bench_fig_t *f)
{
  double *uc = calloc (s->n_nodes, sizeof (double)), *um = calloc (s->n_nodes, sizeof (double));
  bool *used = calloc (s->n_nodes, sizeof (bool));
  double dem_c = 0, dem_m = 0, all_c = 0, all_m = 0;
  f->unplaced = f->placed = f->microvms = 0;
  for (size_t i = 0; i < s->n_wls; i++)
    {
      const pin_wl_t *w = &s->wls[i];
      double mem = (double) w->memory_mib;
      bool vm_needed = w->isolation == ORCH_ISO_MICROVM || w->untrusted;
      all_c += (double) w->cpu_milli;
      all_m += mem + (vm_needed ? BENCH_OVERHEAD_MIB : 0);
      if (node[i] < 0)
        {
          f->unplaced++;
          continue;
        }
      f->placed++;
      if (iso[i] == ORCH_ISO_MICROVM)
        {
          mem += BENCH_OVERHEAD_MIB;
          f->microvms++;
        }
      uc[node[i]] += (double) w->cpu_milli;
      um[node[i]] += mem;
      used[node[i]] = true;
      dem_c += (double) w->cpu_milli;
      dem_m += mem;
    }
  double cap_c = 0, cap_m = 0;
  f->used = 0;
  for (size_t k = 0; k < s->n_nodes; k++)
    if (used[k])
      {
        f->used++;
        cap_c += (double) s->nodes[k].cpu_milli;
        cap_m += (double) s->nodes[k].memory_mib;
      }
  f->cpu_util = cap_c > 0 ? dem_c / cap_c : 0;
  f->mem_util = cap_m > 0 ? dem_m / cap_m : 0;
  bool mem_binds = f->mem_util >= f->cpu_util;
  f->binding = mem_binds ? "memory" : "cpu";
  double util = mem_binds ? f->mem_util : f->cpu_util;
  f->over_pct = util > 0 ? (1.0 / util - 1.0) * 100.0 : 0;
  f->lower = lower_bound (s, all_c, all_m);
  free (uc);
  free (um);
  free (used);
}

/* ---- the engine run ---- */

typedef struct bench_clock_s
{
  double last;
  double *lat;
  size_t n;
} bench_clock_t;

static void
on_placed (void *ud, size_t index)
{
  bench_clock_t *k = ud;
  double t = now_s ();
  k->lat[k->n++] = t - k->last;
  k->last = t;
  (void) index;
}

static int
run_engine (const pin_set_t *s, size_t batch, bool spread, int32_t *node, int *iso, bench_fig_t *f)
{
  size_t n = s->n_wls;
  /* Inputs the engine reads, prepared before the memory baseline. */
  place_workload_t *w = calloc (n ? n : 1, sizeof (*w));
  orch_constraint_t *cons = calloc (n ? n : 1, sizeof (*cons));
  char **vals = calloc (n ? n : 1, sizeof (char *));
  place_result_t *res = calloc (batch, sizeof (*res));
  bench_clock_t clk = { .lat = calloc (n ? n : 1, sizeof (double)) };
  char **keys = calloc (n ? n : 1, sizeof (char *));
  for (size_t i = 0; i < n; i++)
    {
      const pin_wl_t *p = &s->wls[i];
      w[i] = (place_workload_t){ .service = p->service,
                                 .tenant = p->tenant,
                                 .cpu_milli = p->cpu_milli,
                                 .memory_bytes = p->memory_mib * MiB,
                                 .isolation = (orch_isolation_t) p->isolation,
                                 .untrusted = p->untrusted };
      if (p->constraint_key)
        {
          keys[i] = xasprintf ("label.%s", p->constraint_key);
          vals[i] = p->constraint_value;
          cons[i] = (orch_constraint_t){ .attribute = keys[i],
                                         .op = p->constraint_value ? ORCH_OP_EQ : ORCH_OP_EXISTS,
                                         .values = &vals[i],
                                         .n_values = p->constraint_value ? 1 : 0 };
          /* Replicas of one service share one constraint array, as specs do. */
          if (i > 0 && s->wls[i - 1].constraint_key
              && strcmp (p->service, s->wls[i - 1].service) == 0)
            w[i].constraints = w[i - 1].constraints;
          else
            w[i].constraints = &cons[i];
          w[i].n_constraints = 1;
        }
    }
  place_label_t *labels = calloc (16, sizeof (place_label_t));
  char lbuf[1024];

  long long heap0 = heap_bytes ();
  place_config_t cfg;
  place_config_init (&cfg);
  cfg.default_vmm_overhead_bytes = BENCH_OVERHEAD_MIB * MiB;
  cfg.spread = spread;
  place_cluster_t *c = place_cluster_new (&cfg);
  place_node_id_t *ids = malloc ((s->n_nodes ? s->n_nodes : 1) * sizeof (*ids));
  for (size_t k = 0; k < s->n_nodes; k++)
    {
      const pin_node_t *pn = &s->nodes[k];
      size_t nl = 0;
      if (pn->labels)
        {
          snprintf (lbuf, sizeof (lbuf), "%s", pn->labels);
          for (char *save = NULL, *t = strtok_r (lbuf, ";|", &save); t && nl < 16;
               t = strtok_r (NULL, ";|", &save))
            {
              char *eq = strchr (t, '=');
              labels[nl].key = t;
              labels[nl].value = "";
              if (eq)
                {
                  *eq = '\0';
                  labels[nl].value = eq + 1;
                }
              nl++;
            }
        }
      place_node_spec_t ns = { .id = pn->name,
                               .labels = labels,
                               .n_labels = nl,
                               .ready = true,
                               .runtimes = pn->runtimes,
                               .cpu_milli = pn->cpu_milli,
                               .memory_bytes = pn->memory_mib * MiB };
      orch_err_t err = { 0 };
      if (place_node_add (c, &ns, &ids[k], &err) < 0)
        {
          fprintf (stderr, "place_bench: %s\n", err.msg);
          return -1;
        }
    }
  /* Node handles are dense here (no removals): handle == input index. */
  place_batch_opts_t opts = { .on_placed = on_placed, .userdata = &clk };
  double total = 0;
  for (size_t off = 0; off < n; off += batch)
    {
      size_t m = n - off < batch ? n - off : batch;
      orch_err_t err = { 0 };
      double t0 = now_s ();
      clk.last = t0;
      if (place_batch (c, &w[off], m, &opts, res, &err) < 0)
        {
          fprintf (stderr, "place_bench: %s\n", err.msg);
          return -1;
        }
      total += now_s () - t0;
      for (size_t i = 0; i < m; i++)
        {
          node[off + i] = res[i].node == PLACE_NODE_NONE ? -1 : (int32_t) res[i].node;
          iso[off + i] = res[i].isolation;
        }
    }
  f->mem_bytes = heap_bytes () - heap0;
  f->secs = total;
  f->per_s = total > 0 ? (double) n / total : 0;
  percentiles (clk.lat, clk.n, f);
  place_cluster_free (c);
  free (ids);
  free (labels);
  for (size_t i = 0; i < n; i++)
    free (keys[i]);
  free (keys);
  free (vals);
  free (cons);
  free (w);
  free (res);
  free (clk.lat);
  return 0;
}

/* ---- the baseline: first fit in node order, same feasibility rules ---- */

static bool
ff_has_label (const char *labels, const char *key, const char *value)
{
  if (!labels)
    return false;
  size_t kl = strlen (key);
  for (const char *p = labels; *p;)
    {
      const char *end = p + strcspn (p, ";|");
      if ((size_t) (end - p) >= kl && strncmp (p, key, kl) == 0 && (p[kl] == '=' || p + kl == end))
        {
          if (!value)
            return true;
          const char *v = p + kl + 1;
          if ((size_t) (end - v) == strlen (value) && strncmp (v, value, (size_t) (end - v)) == 0)
            return true;
        }
      p = *end ? end + 1 : end;
    }
  return false;
}

static void
run_first_fit (const pin_set_t *s, int32_t *node, int *iso, bench_fig_t *f)
{
  size_t nn = s->n_nodes, n = s->n_wls;
  int64_t *fc = malloc (nn * sizeof (int64_t)), *fm = malloc (nn * sizeof (int64_t));
  const char **kt = calloc (nn, sizeof (char *)); /* kernel tenant, borrowed */
  double *lat = malloc ((n ? n : 1) * sizeof (double));
  for (size_t k = 0; k < nn; k++)
    {
      fc[k] = s->nodes[k].cpu_milli;
      fm[k] = s->nodes[k].memory_mib;
    }
  double total = 0;
  for (size_t i = 0; i < n; i++)
    {
      const pin_wl_t *w = &s->wls[i];
      double t0 = now_s ();
      node[i] = -1;
      bool ct_ok
          = w->isolation == ORCH_ISO_CONTAINER || (w->isolation == ORCH_ISO_AUTO && !w->untrusted);
      bool vm_ok = w->isolation == ORCH_ISO_MICROVM || w->isolation == ORCH_ISO_AUTO;
      for (size_t k = 0; k < nn; k++)
        {
          if (fc[k] < w->cpu_milli || fm[k] < w->memory_mib)
            continue;
          if (w->constraint_key
              && !ff_has_label (s->nodes[k].labels, w->constraint_key, w->constraint_value))
            continue;
          if (ct_ok && (s->nodes[k].runtimes & PLACE_RT_CONTAINER)
              && (!kt[k] || strcmp (kt[k], w->tenant) == 0))
            {
              node[i] = (int32_t) k;
              iso[i] = ORCH_ISO_CONTAINER;
              fc[k] -= w->cpu_milli;
              fm[k] -= w->memory_mib;
              kt[k] = w->tenant;
              break;
            }
          if (vm_ok && (s->nodes[k].runtimes & PLACE_RT_MICROVM)
              && fm[k] >= w->memory_mib + BENCH_OVERHEAD_MIB)
            {
              node[i] = (int32_t) k;
              iso[i] = ORCH_ISO_MICROVM;
              fc[k] -= w->cpu_milli;
              fm[k] -= w->memory_mib + BENCH_OVERHEAD_MIB;
              break;
            }
        }
      double dt = now_s () - t0;
      lat[i] = dt;
      total += dt;
    }
  f->secs = total;
  f->per_s = total > 0 ? (double) n / total : 0;
  f->mem_bytes = -1;
  percentiles (lat, n, f);
  free (fc);
  free (fm);
  free (kt);
  free (lat);
}

static int
write_placements (const char *path, const pin_set_t *s, const int32_t *node, const int *iso)
{
  FILE *fp = fopen (path, "we");
  if (!fp)
    {
      perror (path);
      return -1;
    }
  fprintf (fp, "workload,node,isolation\n");
  for (size_t i = 0; i < s->n_wls; i++)
    fprintf (fp, "%s,%s,%s\n", s->wls[i].name, node[i] >= 0 ? s->nodes[node[i]].name : "",
             node[i] >= 0 ? orch_isolation_name ((orch_isolation_t) iso[i]) : "");
  return fclose (fp) == 0 ? 0 : -1;
}

/* The input as CSV files (PREFIX-nodes.csv, PREFIX-workloads.csv), so a
 * synthetic run can be replayed or checked independently. */
static int
write_inputs (const char *prefix, const pin_set_t *s)
{
  char path[4096];
  snprintf (path, sizeof (path), "%s-nodes.csv", prefix);
  FILE *fp = fopen (path, "we");
  if (!fp)
    {
      perror (path);
      return -1;
    }
  fprintf (fp, "name,cpu_milli,memory_mib,labels,runtimes\n");
  for (size_t i = 0; i < s->n_nodes; i++)
    {
      const pin_node_t *n = &s->nodes[i];
      fprintf (fp, "%s,%lld,%lld,%s,%s\n", n->name, (long long) n->cpu_milli,
               (long long) n->memory_mib, n->labels ? n->labels : "",
               n->runtimes == (PLACE_RT_CONTAINER | PLACE_RT_MICROVM) ? "container;microvm"
               : n->runtimes & PLACE_RT_MICROVM                       ? "microvm"
                                                                      : "container");
    }
  if (fclose (fp) != 0)
    return -1;
  snprintf (path, sizeof (path), "%s-workloads.csv", prefix);
  fp = fopen (path, "we");
  if (!fp)
    {
      perror (path);
      return -1;
    }
  fprintf (fp, "name,cpu_milli,memory_mib,isolation,tenant,service,constraint\n");
  for (size_t i = 0; i < s->n_wls; i++)
    {
      const pin_wl_t *w = &s->wls[i];
      fprintf (fp, "%s,%lld,%lld,%s,%s,%s,%s%s%s\n", w->name, (long long) w->cpu_milli,
               (long long) w->memory_mib,
               w->untrusted ? "untrusted" : orch_isolation_name ((orch_isolation_t) w->isolation),
               w->tenant, w->service, w->constraint_key ? w->constraint_key : "",
               w->constraint_value ? "=" : "", w->constraint_value ? w->constraint_value : "");
    }
  return fclose (fp) == 0 ? 0 : -1;
}

static void
print_human (const char *label, const bench_fig_t *f)
{
  printf ("%s\n", label);
  printf ("  placements/s        %12.0f   (%.3f s for %zu placements)\n", f->per_s, f->secs,
          f->placed + f->unplaced);
  printf ("  latency p50 / p99   %9.2f us / %.2f us   (max %.1f us)\n", f->p50_us, f->p99_us,
          f->max_us);
  printf ("  nodes used          %12zu   (lower bound %zu, +%.1f%%)\n", f->used, f->lower,
          f->lower ? 100.0 * ((double) f->used / (double) f->lower - 1) : 0);
  printf ("  utilisation of used nodes: cpu %.1f%%, memory %.1f%%; binding %s: capacity %.1f%% "
          "above demand\n",
          f->cpu_util * 100, f->mem_util * 100, f->binding, f->over_pct);
  printf ("  placed %zu (%zu microVMs), unplaced %zu\n", f->placed, f->microvms, f->unplaced);
  if (f->mem_bytes >= 0)
    printf ("  engine memory       %12.1f MiB\n", (double) f->mem_bytes / (double) MiB);
}

static void
print_json_fig (const bench_fig_t *f)
{
  printf ("{\"placements_per_s\":%.0f,\"seconds\":%.4f,\"latency_us\":{\"p50\":%.3f,\"p99\":%.3f,"
          "\"max\":%.1f},\"nodes_used\":%zu,\"lower_bound_nodes\":%zu,\"cpu_util_used\":%.4f,"
          "\"mem_util_used\":%.4f,\"binding\":\"%s\",\"capacity_over_demand_pct\":%.2f,"
          "\"placed\":%zu,\"microvms\":%zu,\"unplaced\":%zu",
          f->per_s, f->secs, f->p50_us, f->p99_us, f->max_us, f->used, f->lower, f->cpu_util,
          f->mem_util, f->binding, f->over_pct, f->placed, f->microvms, f->unplaced);
  if (f->mem_bytes >= 0)
    printf (",\"memory_bytes\":%lld", f->mem_bytes);
  printf ("}");
}

static void
usage (FILE *fp)
{
  fprintf (
      fp,
      "usage: place_bench [--nodes N] [--workloads W] [--seed S] [--fill F] [--batch B] [--tenants "
      "T]\n"
      "                   [--nodes-csv FILE] [--workloads-csv FILE]\n"
      "                   [--placements-out FILE] [--baseline-out FILE] [--inputs-out PREFIX]\n"
      "                   [--spread] [--no-baseline] [--json]\n"
      "  nodes CSV:     name,cpu_milli,memory_mib[,labels k=v;k=v][,runtimes container;microvm]\n"
      "  workloads CSV: name,cpu_milli,memory_mib[,isolation container|microvm|auto|untrusted]"
      "[,tenant][,service][,constraint key=value|key]\n"
      "  (columns by header name; a zero or missing cpu_milli/memory_mib is an error)\n");
}

int
main (int argc, char **argv)
{
  /* Batches of 10,000: the most replicas one service may ask for
   * (ORCH_SPEC_MAX_REPLICAS), and what one reconcile pass of a large apply
   * hands the engine. --batch 1 places one workload per call. */
  size_t n_nodes = 10000, n_wls = 100000, batch = 10000;
  uint64_t seed = 1;
  double fill = 0.6;
  int n_tenants = 8;
  const char *nodes_csv = NULL, *wls_csv = NULL, *out = NULL, *base_out = NULL, *inputs_out = NULL;
  bool json = false, baseline = true, spread = false;
  static const struct option opts[] = {
    { "nodes", required_argument, NULL, 'n' },
    { "workloads", required_argument, NULL, 'w' },
    { "seed", required_argument, NULL, 's' },
    { "fill", required_argument, NULL, 'f' },
    { "batch", required_argument, NULL, 'b' },
    { "nodes-csv", required_argument, NULL, 'N' },
    { "workloads-csv", required_argument, NULL, 'W' },
    { "placements-out", required_argument, NULL, 'o' },
    { "baseline-out", required_argument, NULL, 'O' },
    { "no-baseline", no_argument, NULL, 'x' },
    { "tenants", required_argument, NULL, 't' },
    { "inputs-out", required_argument, NULL, 'I' },
    { "spread", no_argument, NULL, 'S' },
    { "json", no_argument, NULL, 'j' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int ch;
  char *end;
  while ((ch = getopt_long (argc, argv, "", opts, NULL)) != -1)
    {
      switch (ch)
        {
        case 'n':
          n_nodes = strtoul (optarg, &end, 10);
          if (*end || n_nodes == 0 || n_nodes > PLACE_MAX_NODES)
            goto bad;
          break;
        case 'w':
          n_wls = strtoul (optarg, &end, 10);
          if (*end || n_wls > 10000000)
            goto bad;
          break;
        case 's':
          seed = strtoull (optarg, &end, 10);
          if (*end)
            goto bad;
          break;
        case 'f':
          fill = strtod (optarg, &end);
          if (*end || !(fill > 0 && fill <= 2))
            goto bad;
          break;
        case 'b':
          batch = strtoul (optarg, &end, 10);
          if (*end || batch == 0 || batch > PLACE_MAX_BATCH)
            goto bad;
          break;
        case 'S':
          spread = true;
          break;
        case 'I':
          inputs_out = optarg;
          break;
        case 't':
          n_tenants = (int) strtol (optarg, &end, 10);
          if (*end || n_tenants < 1 || n_tenants > 8)
            goto bad;
          break;
        case 'N':
          nodes_csv = optarg;
          break;
        case 'W':
          wls_csv = optarg;
          break;
        case 'o':
          out = optarg;
          break;
        case 'O':
          base_out = optarg;
          break;
        case 'x':
          baseline = false;
          break;
        case 'j':
          json = true;
          break;
        case 'h':
          usage (stdout);
          return 0;
        default:
          usage (stderr);
          return 2;
        }
      continue;
    bad:
      fprintf (stderr, "place_bench: bad value for --%s: %s\n",
               opts[0].name ? argv[optind - 2] + 2 : "", optarg);
      return 2;
    }
  if (optind < argc)
    {
      usage (stderr);
      return 2;
    }

  pin_set_t s = { 0 };
  char err[512];
  if (nodes_csv)
    {
      if (pin_read_nodes (nodes_csv, &s, err, sizeof (err)) < 0)
        {
          fprintf (stderr, "place_bench: %s\n", err);
          return 1;
        }
      if (s.n_nodes == 0)
        {
          fprintf (stderr, "place_bench: %s: no nodes\n", nodes_csv);
          return 1;
        }
    }
  else
    pin_synth_nodes (&s, n_nodes, seed);
  if (wls_csv)
    {
      if (pin_read_workloads (wls_csv, &s, err, sizeof (err)) < 0)
        {
          fprintf (stderr, "place_bench: %s\n", err);
          return 1;
        }
    }
  else
    pin_synth_workloads (&s, n_wls, seed, fill, n_tenants);

  if (inputs_out && write_inputs (inputs_out, &s) < 0)
    return 1;
  int32_t *node = malloc ((s.n_wls ? s.n_wls : 1) * sizeof (int32_t));
  int *iso = malloc ((s.n_wls ? s.n_wls : 1) * sizeof (int));
  bench_fig_t fe = { 0 }, fb = { 0 };
  if (run_engine (&s, batch, spread, node, iso, &fe) < 0)
    return 1;
  tally (&s, node, iso, &fe);
  if (out && write_placements (out, &s, node, iso) < 0)
    return 1;
  if (baseline)
    {
      run_first_fit (&s, node, iso, &fb);
      tally (&s, node, iso, &fb);
      if (base_out && write_placements (base_out, &s, node, iso) < 0)
        return 1;
    }

  if (json)
    {
      printf ("{\"nodes\":%zu,\"workloads\":%zu,\"seed\":%llu,\"input\":\"%s\",\"batch\":%zu,"
              "\"engine\":",
              s.n_nodes, s.n_wls, (unsigned long long) seed,
              nodes_csv || wls_csv ? "csv" : "synthetic", batch);
      print_json_fig (&fe);
      if (baseline)
        {
          printf (",\"first_fit\":");
          print_json_fig (&fb);
        }
      printf ("}\n");
    }
  else
    {
      printf ("place_bench: %zu nodes, %zu workloads (%s, seed %llu), batches of %zu\n", s.n_nodes,
              s.n_wls, nodes_csv || wls_csv ? "csv" : "synthetic", (unsigned long long) seed,
              batch);
      print_human (spread ? "engine (spread, indexed)" : "engine (best fit, indexed)", &fe);
      if (baseline)
        print_human ("baseline (first fit, linear scan)", &fb);
    }
  free (node);
  free (iso);
  pin_free (&s);
  return 0;
}
