/* place_check: an independent check of a placements file. It shares only
 * the CSV readers with place_bench, none of the engine: it recomputes every
 * node's load from the workloads placed on it and verifies that
 *   - every workload appears exactly once, on a node that exists;
 *   - no node is over its cpu or memory (a microVM is charged the VMM
 *     overhead on top of its memory);
 *   - the node offers the runtime used, and containers of two tenants
 *     never share a node;
 *   - a workload's label constraint holds on its node.
 *
 *   place_check --nodes-csv FILE --workloads-csv FILE --placements FILE
 *               [--vmm-overhead-mib N] [--allow-unplaced N]
 *
 * Exit 0 when valid (a summary on stdout), 1 with one line per problem. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_map.h"
#include "orch_spec.h"
#include "place.h"
#include "place_input.h"

#define CHECK_MAX_REPORTS 50

static int problems;

static void __attribute__ ((format (printf, 1, 2))) report (const char *fmt, ...)
{
  if (++problems > CHECK_MAX_REPORTS)
    return;
  va_list ap;
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

static bool
has_label (const char *labels, const char *key, const char *value)
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

int
main (int argc, char **argv)
{
  const char *nodes_csv = NULL, *wls_csv = NULL, *pl = NULL;
  long long overhead_mib = 64, allow_unplaced = -1;
  static const struct option opts[] = {
    { "nodes-csv", required_argument, NULL, 'N' },
    { "workloads-csv", required_argument, NULL, 'W' },
    { "placements", required_argument, NULL, 'p' },
    { "vmm-overhead-mib", required_argument, NULL, 'v' },
    { "allow-unplaced", required_argument, NULL, 'u' },
    { NULL, 0, NULL, 0 },
  };
  int ch;
  while ((ch = getopt_long (argc, argv, "", opts, NULL)) != -1)
    switch (ch)
      {
      case 'N':
        nodes_csv = optarg;
        break;
      case 'W':
        wls_csv = optarg;
        break;
      case 'p':
        pl = optarg;
        break;
      case 'v':
        overhead_mib = atoll (optarg);
        break;
      case 'u':
        allow_unplaced = atoll (optarg);
        break;
      default:
        return 2;
      }
  if (!nodes_csv || !wls_csv || !pl)
    {
      fprintf (stderr, "usage: place_check --nodes-csv FILE --workloads-csv FILE --placements FILE"
                       " [--vmm-overhead-mib N] [--allow-unplaced N]\n");
      return 2;
    }
  pin_set_t s = { 0 };
  char err[512];
  pin_placement_t *p = NULL;
  size_t np = 0;
  if (pin_read_nodes (nodes_csv, &s, err, sizeof (err)) < 0
      || pin_read_workloads (wls_csv, &s, err, sizeof (err)) < 0
      || pin_read_placements (pl, &p, &np, err, sizeof (err)) < 0)
    {
      fprintf (stderr, "place_check: %s\n", err);
      return 1;
    }

  orch_map_t node_ix = ORCH_MAP_INIT, wl_ix = ORCH_MAP_INIT;
  for (size_t i = 0; i < s.n_nodes; i++)
    if (orch_map_put (&node_ix, s.nodes[i].name, (void *) (uintptr_t) (i + 1)))
      report ("node %s listed twice", s.nodes[i].name);
  for (size_t i = 0; i < s.n_wls; i++)
    if (orch_map_put (&wl_ix, s.wls[i].name, (void *) (uintptr_t) (i + 1)))
      report ("workload %s listed twice", s.wls[i].name);

  long long *cpu = calloc (s.n_nodes + 1, sizeof (long long));
  long long *mem = calloc (s.n_nodes + 1, sizeof (long long));
  const char **tenant = calloc (s.n_nodes + 1, sizeof (char *));
  bool *seen = calloc (s.n_wls + 1, sizeof (bool));
  size_t placed = 0, unplaced = 0, vms = 0;
  for (size_t k = 0; k < np; k++)
    {
      void *wv = orch_map_get (&wl_ix, p[k].workload);
      if (!wv)
        {
          report ("placement of unknown workload %s", p[k].workload);
          continue;
        }
      size_t wi = (uintptr_t) wv - 1;
      const pin_wl_t *w = &s.wls[wi];
      if (seen[wi])
        report ("workload %s placed twice", w->name);
      seen[wi] = true;
      if (!*p[k].node)
        {
          unplaced++;
          continue;
        }
      void *nv = orch_map_get (&node_ix, p[k].node);
      if (!nv)
        {
          report ("workload %s on unknown node %s", w->name, p[k].node);
          continue;
        }
      size_t ni = (uintptr_t) nv - 1;
      const pin_node_t *n = &s.nodes[ni];
      placed++;
      bool vm = p[k].isolation == ORCH_ISO_MICROVM;
      if (vm)
        vms++;
      if (!vm && (w->isolation == ORCH_ISO_MICROVM || w->untrusted))
        report ("workload %s must run as a microVM, placed as a container", w->name);
      if (vm && w->isolation == ORCH_ISO_CONTAINER)
        report ("workload %s must run as a container, placed as a microVM", w->name);
      if (!(n->runtimes & (vm ? PLACE_RT_MICROVM : PLACE_RT_CONTAINER)))
        report ("workload %s placed as %s on %s, which has no such backend", w->name,
                vm ? "microvm" : "container", n->name);
      if (w->constraint_key && !has_label (n->labels, w->constraint_key, w->constraint_value))
        report ("workload %s needs label %s%s%s; node %s has \"%s\"", w->name, w->constraint_key,
                w->constraint_value ? "=" : "", w->constraint_value ? w->constraint_value : "",
                n->name, n->labels ? n->labels : "");
      if (!vm)
        {
          if (tenant[ni] && strcmp (tenant[ni], w->tenant) != 0)
            report ("node %s: containers of tenants %s and %s share its kernel", n->name,
                    tenant[ni], w->tenant);
          tenant[ni] = w->tenant;
        }
      cpu[ni] += w->cpu_milli;
      mem[ni] += w->memory_mib + (vm ? overhead_mib : 0);
    }
  for (size_t i = 0; i < s.n_wls; i++)
    if (!seen[i])
      report ("workload %s missing from the placements", s.wls[i].name);
  size_t used = 0;
  for (size_t i = 0; i < s.n_nodes; i++)
    {
      if (cpu[i] || mem[i])
        used++;
      if (cpu[i] > s.nodes[i].cpu_milli)
        report ("node %s over cpu: %lld m placed, %lld m allocatable", s.nodes[i].name, cpu[i],
                (long long) s.nodes[i].cpu_milli);
      if (mem[i] > s.nodes[i].memory_mib)
        report ("node %s over memory: %lld MiB placed, %lld MiB allocatable", s.nodes[i].name,
                mem[i], (long long) s.nodes[i].memory_mib);
    }
  if (allow_unplaced >= 0 && (long long) unplaced > allow_unplaced)
    report ("%zu workloads unplaced, at most %lld allowed", unplaced, allow_unplaced);
  if (problems > CHECK_MAX_REPORTS)
    fprintf (stderr, "... and %d more problems\n", problems - CHECK_MAX_REPORTS);
  printf (
      "place_check: %zu workloads (%zu placed, %zu microVMs, %zu unplaced) on %zu of %zu nodes: "
      "%s\n",
      s.n_wls, placed, vms, unplaced, used, s.n_nodes, problems ? "INVALID" : "valid");
  for (size_t k = 0; k < np; k++)
    {
      free (p[k].workload);
      free (p[k].node);
    }
  free (p);
  free (cpu);
  free (mem);
  free (tenant);
  free (seen);
  orch_map_free (&node_ix);
  orch_map_free (&wl_ix);
  pin_free (&s);
  return problems ? 1 : 0;
}
