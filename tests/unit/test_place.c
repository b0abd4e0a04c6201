/* Unit tests of the placement engine on hand-built clusters: every
 * feasibility reason, the tenant/kernel rule, auto isolation, VMM overhead,
 * usage above requests, spread vs bin-pack, plans, determinism, pending
 * work placed once room appears, and a randomised check that nothing is
 * ever over capacity and nothing is refused while a node could take it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_test.h"
#include "orch_util.h"
#include "place.h"

#define MiB (1024LL * 1024)
#define GiB (1024 * MiB)
#define RT_BOTH (PLACE_RT_CONTAINER | PLACE_RT_MICROVM)

static place_node_id_t
add_node_full (place_cluster_t *c, const char *id, int64_t cpu, int64_t mem, unsigned rt,
               const char *labels)
{
  place_label_t l[8];
  char buf[256];
  char *keys[8];
  size_t n = 0;
  if (labels)
    {
      snprintf (buf, sizeof (buf), "%s", labels);
      for (char *save = NULL, *tok = strtok_r (buf, ",", &save); tok && n < 8;
           tok = strtok_r (NULL, ",", &save))
        {
          char *eq = strchr (tok, '=');
          assert_non_null (eq);
          *eq = '\0';
          keys[n] = tok;
          l[n].key = tok;
          l[n].value = eq + 1;
          n++;
        }
    }
  (void) keys;
  place_node_spec_t s = { .id = id,
                          .labels = l,
                          .n_labels = n,
                          .ready = true,
                          .runtimes = rt,
                          .cpu_milli = cpu,
                          .memory_bytes = mem };
  place_node_id_t out = PLACE_NODE_NONE;
  orch_err_t err = { 0 };
  assert_int_equal (place_node_add (c, &s, &out, &err), 0);
  return out;
}

static place_node_id_t
add_node (place_cluster_t *c, const char *id, int64_t cpu, int64_t mem)
{
  return add_node_full (c, id, cpu, mem, RT_BOTH, NULL);
}

static place_workload_t
wl (const char *svc, const char *tenant, int64_t cpu, int64_t mem, orch_isolation_t iso)
{
  place_workload_t w = {
    .service = svc, .tenant = tenant, .cpu_milli = cpu, .memory_bytes = mem, .isolation = iso
  };
  return w;
}

static place_result_t
place1 (place_cluster_t *c, const place_workload_t *w)
{
  place_result_t r;
  orch_err_t err = { 0 };
  int rc = place_batch (c, w, 1, NULL, &r, &err);
  assert_true (rc == 0 || rc == 1);
  return r;
}

static void
add_alloc (place_cluster_t *c, place_node_id_t node, const char *svc, const char *tenant,
           orch_isolation_t iso, int64_t cpu, int64_t mem)
{
  place_alloc_spec_t a = { .service = svc,
                           .tenant = tenant,
                           .node = node,
                           .isolation = iso,
                           .cpu_milli = cpu,
                           .memory_bytes = mem };
  orch_err_t err = { 0 };
  assert_int_equal (place_alloc_add (c, &a, NULL, &err), 0);
}

static void
t_best_fit_picks_tightest_node (void **state)
{
  (void) state;
  place_cluster_t *c = place_cluster_new (NULL);
  place_node_id_t big = add_node (c, "big", 8000, 16 * GiB);
  place_node_id_t mid = add_node (c, "mid", 4000, 8 * GiB);
  place_node_id_t huge = add_node (c, "huge", 16000, 32 * GiB);
  add_alloc (c, big, "x", "acme", ORCH_ISO_CONTAINER, 1000, 2 * GiB);
  add_alloc (c, mid, "x", "acme", ORCH_ISO_CONTAINER, 1000, 2 * GiB);
  add_alloc (c, huge, "x", "acme", ORCH_ISO_CONTAINER, 1000, 2 * GiB);
  /* Among nodes in use, the one left tightest after placement. */
  place_workload_t w = wl ("web", "acme", 1000, 2 * GiB, ORCH_ISO_CONTAINER);
  place_result_t r = place1 (c, &w);
  assert_int_equal (r.node, mid);
  assert_int_equal (r.isolation, ORCH_ISO_CONTAINER);
  assert_string_equal (r.reason, "best fit: cpu 50%, mem 50% after placement");
  assert_int_not_equal (r.alloc, PLACE_ALLOC_NONE);
  r = place1 (c, &w);
  assert_int_equal (r.node, mid);
  assert_string_equal (r.reason, "best fit: cpu 75%, mem 75% after placement");
  /* mid cannot take 2 cores any more: big is the next tightest. */
  w.cpu_milli = 2000;
  assert_int_equal (place1 (c, &w).node, big);
  place_cluster_free (c);
}

static void
t_node_in_use_before_empty_node (void **state)
{
  (void) state;
  /* A node in use beats an empty one even if the empty one would be a
   * tighter fit; an empty node is opened only when none in use fits, and
   * then the one with the most usable capacity. */
  place_cluster_t *c = place_cluster_new (NULL);
  place_node_id_t small = add_node (c, "small", 1000, 1 * GiB);
  place_node_id_t used = add_node (c, "used", 16000, 32 * GiB);
  place_node_id_t big = add_node (c, "big", 16000, 32 * GiB);
  add_alloc (c, used, "x", NULL, ORCH_ISO_CONTAINER, 1000, 1 * GiB);
  place_workload_t w = wl ("a", NULL, 900, 900 * MiB, ORCH_ISO_CONTAINER);
  assert_int_equal (place1 (c, &w).node, used);
  w.cpu_milli = 15000;
  w.memory_bytes = 30 * GiB;
  assert_int_equal (place1 (c, &w).node, big);
  w.cpu_milli = 500;
  w.memory_bytes = 512 * MiB;
  place_result_t r = place1 (c, &w);
  assert_true (r.node == used || r.node == big);
  (void) small;
  place_cluster_free (c);
}

static void
t_best_fit_both_dimensions (void **state)
{
  (void) state;
  /* "cpuleft" would keep lots of cpu and little memory; "even" leaves less
   * in all: bin-pack on both dimensions takes "even". */
  place_cluster_t *c = place_cluster_new (NULL);
  place_node_id_t cpuleft = add_node (c, "cpuleft", 8000, 2 * GiB);
  place_node_id_t even = add_node (c, "even", 2000, 3 * GiB);
  add_alloc (c, cpuleft, "x", NULL, ORCH_ISO_CONTAINER, 100, 100 * MiB);
  add_alloc (c, even, "x", NULL, ORCH_ISO_CONTAINER, 100, 100 * MiB);
  place_workload_t w = wl ("a", NULL, 1000, 1 * GiB, ORCH_ISO_CONTAINER);
  assert_int_equal (place1 (c, &w).node, even);
  place_cluster_free (c);
}

static void
t_failure_reasons_aggregated (void **state)
{
  (void) state;
  place_cluster_t *c = place_cluster_new (NULL);
  add_node_full (c, "n1", 4000, 256 * MiB, RT_BOTH, NULL);
  add_node_full (c, "n2", 4000, 256 * MiB, RT_BOTH, NULL);
  add_node_full (c, "n3", 4000, 512 * MiB, RT_BOTH, NULL);
  add_node_full (c, "n4", 4000, 8 * GiB, PLACE_RT_CONTAINER, NULL);
  add_node_full (c, "n5", 4000, 8 * GiB, PLACE_RT_CONTAINER, NULL);
  place_workload_t w = wl ("db", "acme", 500, 1 * GiB, ORCH_ISO_MICROVM);
  place_result_t r = place1 (c, &w);
  assert_int_equal (r.node, PLACE_NODE_NONE);
  assert_int_equal (r.alloc, PLACE_ALLOC_NONE);
  assert_string_equal (r.reason, "0/5 nodes: 3 insufficient memory, 2 no microvm backend");
  assert_int_equal (r.n_nodes, 5);
  assert_int_equal (r.rejected[PLACE_REJ_MEMORY], 3);
  assert_int_equal (r.rejected[PLACE_REJ_NO_BACKEND], 2);
  assert_int_equal (place_alloc_count (c), 0);
  place_cluster_free (c);
}

static void
t_every_reason_counted (void **state)
{
  (void) state;
  place_cluster_t *c = place_cluster_new (NULL);
  place_node_id_t nr = add_node (c, "notready", 4000, 4 * GiB);
  place_node_set_state (c, nr, false, false);
  place_node_id_t dr = add_node (c, "draining", 4000, 4 * GiB);
  place_node_set_state (c, dr, true, true);
  add_node_full (c, "vmonly", 4000, 4 * GiB, PLACE_RT_MICROVM, NULL);
  place_node_id_t other = add_node (c, "othertenant", 4000, 4 * GiB);
  add_alloc (c, other, "x", "globex", ORCH_ISO_CONTAINER, 100, 100 * MiB);
  add_node_full (c, "zoneb", 4000, 4 * GiB, RT_BOTH, "zone=b");
  place_node_spec_t ps = { .id = "noports",
                           .ready = true,
                           .runtimes = RT_BOTH,
                           .cpu_milli = 4000,
                           .memory_bytes = 4 * GiB,
                           .port_min = 100,
                           .port_max = 100,
                           .labels = &(place_label_t){ "zone", "a" },
                           .n_labels = 1 };
  assert_int_equal (place_node_add (c, &ps, NULL, NULL), 0);
  add_node_full (c, "smallcpu", 100, 4 * GiB, RT_BOTH, "zone=a");
  add_node_full (c, "smallmem", 4000, 64 * MiB, RT_BOTH, "zone=a");
  char *vals[] = { "a" };
  orch_constraint_t k
      = { .attribute = "label.zone", .op = ORCH_OP_EQ, .values = vals, .n_values = 1 };
  place_workload_t w = wl ("web", "acme", 500, 1 * GiB, ORCH_ISO_CONTAINER);
  w.constraints = &k;
  w.n_constraints = 1;
  w.host_ports = 2;
  place_result_t r = place1 (c, &w);
  assert_int_equal (r.node, PLACE_NODE_NONE);
  /* othertenant is rejected for its kernel before its labels are read. */
  assert_string_equal (r.reason, "0/8 nodes: 1 not ready, 1 draining, 1 no container backend, "
                                 "1 kernel shared with another tenant, "
                                 "1 not matching label.zone = a, 1 no free host ports, "
                                 "1 insufficient cpu, 1 insufficient memory");
  for (int i = 0; i < PLACE_REJ__MAX; i++)
    assert_int_equal (r.rejected[i], 1);
  place_cluster_free (c);
}

static void
t_tenant_kernel_rule (void **state)
{
  (void) state;
  place_cluster_t *c = place_cluster_new (NULL);
  place_node_id_t n1 = add_node_full (c, "n1", 4000, 4 * GiB, PLACE_RT_CONTAINER, NULL);
  add_alloc (c, n1, "a-web", "a", ORCH_ISO_CONTAINER, 1000, 1 * GiB);
  place_workload_t wb = wl ("b-web", "b", 500, 512 * MiB, ORCH_ISO_CONTAINER);
  place_result_t r = place1 (c, &wb);
  assert_int_equal (r.node, PLACE_NODE_NONE);
  assert_string_equal (r.reason, "0/1 nodes: 1 kernel shared with another tenant");
  /* The same tenant may join. */
  place_workload_t wa = wl ("a-api", "a", 500, 512 * MiB, ORCH_ISO_CONTAINER);
  assert_int_equal (place1 (c, &wa).node, n1);
  /* A second node: tenant b goes there, and then owns that kernel. */
  place_node_id_t n2 = add_node_full (c, "n2", 4000, 4 * GiB, PLACE_RT_CONTAINER, NULL);
  r = place1 (c, &wb);
  assert_int_equal (r.node, n2);
  place_node_info_t info;
  assert_int_equal (place_node_info (c, n2, &info), 0);
  assert_string_equal (info.kernel_tenant, "b");
  /* A microVM of tenant c may share n1 (its own kernel). */
  place_node_id_t n3 = add_node_full (c, "n3", 4000, 8 * GiB, RT_BOTH, NULL);
  add_alloc (c, n3, "a-x", "a", ORCH_ISO_CONTAINER, 100, 100 * MiB);
  place_workload_t wc = wl ("c-vm", "c", 500, 512 * MiB, ORCH_ISO_MICROVM);
  r = place1 (c, &wc);
  assert_int_equal (r.node, n3);
  assert_int_equal (r.isolation, ORCH_ISO_MICROVM);
  place_cluster_free (c);
}

static void
t_auto_untrusted_is_microvm (void **state)
{
  (void) state;
  place_cluster_t *c = place_cluster_new (NULL);
  place_node_id_t n = add_node (c, "n1", 4000, 4 * GiB);
  place_workload_t w = wl ("w", "acme", 500, 512 * MiB, ORCH_ISO_AUTO);
  w.untrusted = true;
  place_result_t r = place1 (c, &w);
  assert_int_equal (r.node, n);
  assert_int_equal (r.isolation, ORCH_ISO_MICROVM);
  assert_non_null (strstr (r.reason, "microvm: untrusted"));
  place_cluster_free (c);
}

static void
t_auto_container_when_no_conflict (void **state)
{
  (void) state;
  place_cluster_t *c = place_cluster_new (NULL);
  place_node_id_t n = add_node (c, "n1", 4000, 4 * GiB);
  add_alloc (c, n, "other", "acme", ORCH_ISO_CONTAINER, 1000, 1 * GiB);
  place_workload_t w = wl ("w", "acme", 500, 512 * MiB, ORCH_ISO_AUTO);
  place_result_t r = place1 (c, &w);
  assert_int_equal (r.node, n);
  assert_int_equal (r.isolation, ORCH_ISO_CONTAINER);
  assert_string_equal (r.reason, "container; best fit: cpu 38%, mem 38% after placement");
  place_cluster_free (c);
}

static void
t_auto_microvm_on_tenant_conflict (void **state)
{
  (void) state;
  /* n1 is mostly full with tenant a's containers; n2 is empty. A container
   * of tenant b would need n2; a microVM on n1 packs better. */
  place_cluster_t *c = place_cluster_new (NULL);
  place_node_id_t n1 = add_node (c, "n1", 8000, 16 * GiB);
  add_node (c, "n2", 8000, 16 * GiB);
  add_alloc (c, n1, "a-web", "a", ORCH_ISO_CONTAINER, 6000, 12 * GiB);
  place_workload_t w = wl ("b-web", "b", 500, 1 * GiB, ORCH_ISO_AUTO);
  place_result_t r = place1 (c, &w);
  assert_int_equal (r.node, n1);
  assert_int_equal (r.isolation, ORCH_ISO_MICROVM);
  assert_non_null (
      strstr (r.reason, "microvm: tenant b would share node n1's kernel with tenant a"));
  /* Without room for the microVM's overhead on n1, the container goes to n2. */
  place_cluster_t *c2 = place_cluster_new (NULL);
  place_node_id_t m1 = add_node (c2, "n1", 8000, 16 * GiB);
  place_node_id_t m2 = add_node (c2, "n2", 8000, 16 * GiB);
  add_alloc (c2, m1, "a-web", "a", ORCH_ISO_CONTAINER, 6000, 15 * GiB);
  place_workload_t w2 = wl ("b-web", "b", 500, 1 * GiB, ORCH_ISO_AUTO);
  r = place1 (c2, &w2);
  assert_int_equal (r.node, m2);
  assert_int_equal (r.isolation, ORCH_ISO_CONTAINER);
  place_cluster_free (c2);
  place_cluster_free (c);
}

static void
t_vmm_overhead_charged (void **state)
{
  (void) state;
  place_cluster_t *c = place_cluster_new (NULL); /* default overhead 64 MiB */
  place_node_id_t n = add_node (c, "n1", 4000, 1 * GiB);
  place_workload_t w = wl ("vm", NULL, 500, 1 * GiB - 32 * MiB, ORCH_ISO_MICROVM);
  place_result_t r = place1 (c, &w);
  assert_int_equal (r.node, PLACE_NODE_NONE);
  assert_string_equal (r.reason, "0/1 nodes: 1 insufficient memory");
  /* As a container it fits. */
  w.isolation = ORCH_ISO_CONTAINER;
  r = place1 (c, &w);
  assert_int_equal (r.node, n);
  place_alloc_remove (c, r.alloc);
  /* Once the node reports a smaller measured overhead, the microVM fits and
   * is charged exactly that. */
  place_node_set_vmm_overhead (c, n, 16 * MiB);
  w.isolation = ORCH_ISO_MICROVM;
  r = place1 (c, &w);
  assert_int_equal (r.node, n);
  place_node_info_t info;
  place_node_info (c, n, &info);
  assert_int_equal (info.memory_reserved, 1 * GiB - 32 * MiB + 16 * MiB);
  assert_int_equal (info.n_microvms, 1);
  place_cluster_free (c);
}

static void
t_usage_above_requests (void **state)
{
  (void) state;
  place_cluster_t *c = place_cluster_new (NULL);
  place_node_id_t n = add_node (c, "n1", 4000, 4 * GiB);
  add_alloc (c, n, "greedy", NULL, ORCH_ISO_CONTAINER, 500, 1 * GiB);
  place_workload_t w = wl ("w", NULL, 500, 2 * GiB, ORCH_ISO_CONTAINER);
  /* Its workloads actually use 3 GiB: 2 GiB more do not fit. */
  place_node_set_usage (c, n, 3 * GiB);
  place_result_t r = place1 (c, &w);
  assert_int_equal (r.node, PLACE_NODE_NONE);
  assert_string_equal (r.reason, "0/1 nodes: 1 insufficient memory");
  /* 1 GiB still does; and the excess stays counted on top of it. */
  w.memory_bytes = 1 * GiB;
  r = place1 (c, &w);
  assert_int_equal (r.node, n);
  place_node_info_t info;
  place_node_info (c, n, &info);
  assert_int_equal (info.memory_effective, 4 * GiB);
  /* Usage under the requests: requests count. */
  place_node_set_usage (c, n, 512 * MiB);
  place_node_info (c, n, &info);
  assert_int_equal (info.memory_effective, 2 * GiB);
  place_cluster_free (c);
}

static place_workload_t
wl_con (const orch_constraint_t *k)
{
  place_workload_t w = wl ("w", NULL, 100, 64 * MiB, ORCH_ISO_CONTAINER);
  w.constraints = k;
  w.n_constraints = 1;
  return w;
}

static void
t_constraints (void **state)
{
  (void) state;
  place_cluster_t *c = place_cluster_new (NULL);
  place_node_id_t a = add_node_full (c, "na", 4000, 4 * GiB, RT_BOTH, "zone=a,ssd=yes");
  place_node_id_t b = add_node_full (c, "nb", 4000, 8 * GiB, RT_BOTH, "zone=b");
  place_node_id_t z = add_node_full (c, "nz", 4000, 16 * GiB, RT_BOTH, NULL);
  char *va[] = { "a" }, *vb[] = { "b" }, *vab[] = { "a", "b" }, *vnb[] = { "nb" };
  struct
  {
    const char *attr;
    orch_constraint_op_t op;
    char **vals;
    size_t n;
    place_node_id_t expect;
  } cases[] = {
    { "label.zone", ORCH_OP_EQ, va, 1, a },
    { "label.zone", ORCH_OP_EQ, vb, 1, b },
    /* != and not_in are met by a node without the label (tightest wins: na). */
    { "label.zone", ORCH_OP_NE, vb, 1, a },
    { "label.zone", ORCH_OP_IN, vab, 2, a },
    { "label.zone", ORCH_OP_NOT_IN, vab, 2, z },
    { "label.ssd", ORCH_OP_EXISTS, NULL, 0, a },
    { "node.id", ORCH_OP_EQ, vnb, 1, b },
    { "node.id", ORCH_OP_IN, vnb, 1, b },
    { "node.id", ORCH_OP_NE, (char *[]){ "na" }, 1, b },
    { "node.id", ORCH_OP_NOT_IN, (char *[]){ "na", "nb" }, 2, z },
  };
  for (size_t i = 0; i < ORCH_ARRAY_LEN (cases); i++)
    {
      orch_constraint_t k = { .attribute = (char *) cases[i].attr,
                              .op = cases[i].op,
                              .values = cases[i].vals,
                              .n_values = cases[i].n };
      place_workload_t w = wl_con (&k);
      place_batch_opts_t o = { .plan = true };
      place_result_t r;
      assert_int_equal (place_batch (c, &w, 1, &o, &r, NULL), 1);
      if (r.node != cases[i].expect)
        fail_msg ("case %zu (%s): got %s", i, cases[i].attr, place_node_name (c, r.node));
    }
  /* Nothing matches: the reason names the constraint. */
  char *vc[] = { "c" };
  orch_constraint_t k
      = { .attribute = "label.zone", .op = ORCH_OP_EQ, .values = vc, .n_values = 1 };
  place_workload_t w = wl_con (&k);
  place_result_t r = place1 (c, &w);
  assert_string_equal (r.reason, "0/3 nodes: 3 not matching label.zone = c");
  /* An unknown attribute is an invalid workload, not a silent mismatch. */
  orch_constraint_t bad = { .attribute = "zone", .op = ORCH_OP_EQ, .values = vc, .n_values = 1 };
  w = wl_con (&bad);
  r = place1 (c, &w);
  assert_int_equal (r.node, PLACE_NODE_NONE);
  assert_non_null (strstr (r.reason, "invalid workload: constraint attribute zone"));
  place_cluster_free (c);
}

static void
t_host_ports_counted (void **state)
{
  (void) state;
  place_cluster_t *c = place_cluster_new (NULL);
  place_node_spec_t s = { .id = "n1",
                          .ready = true,
                          .runtimes = RT_BOTH,
                          .cpu_milli = 4000,
                          .memory_bytes = 4 * GiB,
                          .port_min = 8000,
                          .port_max = 8003,
                          .host_ports_in_use = 1 };
  place_node_id_t n;
  assert_int_equal (place_node_add (c, &s, &n, NULL), 0);
  place_workload_t w = wl ("w", NULL, 100, 64 * MiB, ORCH_ISO_CONTAINER);
  w.host_ports = 2;
  assert_int_equal (place1 (c, &w).node, n); /* 3 free -> 1 */
  place_result_t r = place1 (c, &w);
  assert_int_equal (r.node, PLACE_NODE_NONE);
  assert_string_equal (r.reason, "0/1 nodes: 1 no free host ports");
  w.host_ports = 1;
  assert_int_equal (place1 (c, &w).node, n);
  place_node_info_t info;
  place_node_info (c, n, &info);
  assert_int_equal (info.host_ports_free, 0);
  place_cluster_free (c);
}

static void
t_spread_vs_binpack (void **state)
{
  (void) state;
  place_workload_t w[3];
  place_result_t r[3];
  for (int spread = 0; spread < 2; spread++)
    {
      place_cluster_t *c = place_cluster_new (NULL);
      add_node (c, "n1", 4000, 8 * GiB);
      add_node (c, "n2", 4000, 8 * GiB);
      add_node (c, "n3", 4000, 8 * GiB);
      for (int i = 0; i < 3; i++)
        {
          w[i] = wl ("web", "acme", 500, 512 * MiB, ORCH_ISO_CONTAINER);
          w[i].spread = spread;
        }
      assert_int_equal (place_batch (c, w, 3, NULL, r, NULL), 3);
      if (spread)
        {
          assert_int_not_equal (r[0].node, r[1].node);
          assert_int_not_equal (r[1].node, r[2].node);
          assert_int_not_equal (r[0].node, r[2].node);
          assert_non_null (strstr (r[0].reason, "spread: 1 replica of web on"));
        }
      else
        {
          assert_int_equal (r[0].node, r[1].node);
          assert_int_equal (r[1].node, r[2].node);
        }
      place_cluster_free (c);
    }
  /* Cluster-wide spread, and replicas beyond the node count share evenly. */
  place_config_t cfg;
  place_config_init (&cfg);
  cfg.spread = true;
  place_cluster_t *c = place_cluster_new (&cfg);
  add_node (c, "n1", 4000, 8 * GiB);
  add_node (c, "n2", 4000, 8 * GiB);
  place_workload_t w4[4];
  place_result_t r4[4];
  for (int i = 0; i < 4; i++)
    w4[i] = wl ("api", NULL, 100, 64 * MiB, ORCH_ISO_CONTAINER);
  assert_int_equal (place_batch (c, w4, 4, NULL, r4, NULL), 4);
  int on_first = 0;
  for (int i = 0; i < 4; i++)
    on_first += r4[i].node == r4[0].node;
  assert_int_equal (on_first, 2);
  place_cluster_free (c);
}

static void
t_batch_sees_its_own_placements (void **state)
{
  (void) state;
  place_cluster_t *c = place_cluster_new (NULL);
  add_node (c, "n1", 1000, 1 * GiB);
  add_node (c, "n2", 1000, 1 * GiB);
  place_workload_t w[3] = { wl ("a", NULL, 600, 100 * MiB, ORCH_ISO_CONTAINER),
                            wl ("a", NULL, 600, 100 * MiB, ORCH_ISO_CONTAINER),
                            wl ("a", NULL, 600, 100 * MiB, ORCH_ISO_CONTAINER) };
  place_result_t r[3];
  assert_int_equal (place_batch (c, w, 3, NULL, r, NULL), 2);
  assert_int_not_equal (r[0].node, r[1].node);
  assert_string_equal (r[2].reason, "0/2 nodes: 2 insufficient cpu");
  place_cluster_free (c);
}

static place_cluster_t *
build_mixed (void)
{
  place_cluster_t *c = place_cluster_new (NULL);
  char id[32];
  for (int i = 0; i < 40; i++)
    {
      snprintf (id, sizeof (id), "node-%02d", i);
      add_node_full (c, id, 2000 + 1000 * (i % 4), (4 + 4 * (i % 3)) * GiB,
                     i % 5 == 0 ? PLACE_RT_CONTAINER : RT_BOTH, i % 2 ? "zone=a" : "zone=b");
    }
  return c;
}

static void
make_workloads (place_workload_t *w, size_t n, unsigned seed)
{
  static const char *svcs[] = { "web", "api", "db", "cache", "batch" };
  static const char *tenants[] = { "acme", "globex", "initech" };
  for (size_t i = 0; i < n; i++)
    {
      seed = seed * 1103515245u + 12345u;
      unsigned r = seed >> 8;
      w[i] = wl (svcs[r % 5], tenants[(r / 5) % 3], 100 + (r % 17) * 50,
                 (int64_t) (64 + (r % 23) * 48) * MiB, (orch_isolation_t) ((r / 7) % 3));
      w[i].untrusted = (r % 11) == 0;
      w[i].spread = (r % 13) == 0;
    }
}

static void
t_deterministic_and_plan_matches_apply (void **state)
{
  (void) state;
  enum
  {
    N = 300
  };
  place_workload_t *w = calloc (N, sizeof (*w));
  place_result_t *r1 = calloc (N, sizeof (*r1)), *r2 = calloc (N, sizeof (*r2)),
                 *r3 = calloc (N, sizeof (*r3));
  make_workloads (w, N, 7);
  place_cluster_t *c1 = build_mixed (), *c2 = build_mixed ();
  /* A plan, then the same batch for real: same answers, and the plan left
   * nothing behind. */
  place_batch_opts_t plan = { .plan = true };
  place_batch (c1, w, N, &plan, r1, NULL);
  assert_int_equal (place_alloc_count (c1), 0);
  place_batch (c1, w, N, NULL, r2, NULL);
  place_batch (c2, w, N, NULL, r3, NULL);
  for (size_t i = 0; i < N; i++)
    {
      assert_int_equal (r1[i].node, r2[i].node);
      assert_int_equal (r1[i].isolation, r2[i].isolation);
      assert_string_equal (r1[i].reason, r2[i].reason);
      assert_int_equal (r2[i].node, r3[i].node);
      assert_string_equal (r2[i].reason, r3[i].reason);
      assert_int_equal (r2[i].alloc, r3[i].alloc);
    }
  /* A plan on a loaded cluster changes nothing either. */
  place_node_info_t before[40], after[40];
  for (place_node_id_t n = 0; n < 40; n++)
    place_node_info (c1, n, &before[n]);
  place_batch (c1, w, N, &plan, r1, NULL);
  for (place_node_id_t n = 0; n < 40; n++)
    {
      place_node_info (c1, n, &after[n]);
      assert_memory_equal (&before[n], &after[n], offsetof (place_node_info_t, kernel_tenant));
    }
  place_batch (c1, w, 20, NULL, r1, NULL);
  place_batch (c2, w, 20, NULL, r2, NULL);
  for (size_t i = 0; i < 20; i++)
    {
      assert_int_equal (r1[i].node, r2[i].node);
      assert_int_equal (r1[i].alloc, r2[i].alloc);
    }
  place_cluster_free (c1);
  place_cluster_free (c2);
  free (w);
  free (r1);
  free (r2);
  free (r3);
}

static void
t_pending_placed_when_room_appears (void **state)
{
  (void) state;
  place_cluster_t *c = place_cluster_new (NULL);
  place_node_id_t n1 = add_node (c, "n1", 2000, 2 * GiB);
  place_workload_t w = wl ("big", NULL, 1500, 1536 * MiB, ORCH_ISO_CONTAINER);
  place_result_t first = place1 (c, &w);
  assert_int_equal (first.node, n1);
  place_result_t r = place1 (c, &w);
  assert_int_equal (r.node, PLACE_NODE_NONE);
  assert_string_equal (r.reason, "0/1 nodes: 1 insufficient cpu");
  /* A node joins: the pending replica is placed there. */
  place_node_id_t n2 = add_node (c, "n2", 2000, 2 * GiB);
  r = place1 (c, &w);
  assert_int_equal (r.node, n2);
  r = place1 (c, &w);
  assert_int_equal (r.node, PLACE_NODE_NONE);
  /* A scale-down frees room on n1. */
  place_alloc_remove (c, first.alloc);
  r = place1 (c, &w);
  assert_int_equal (r.node, n1);
  /* A node that leaves takes its allocations with it. */
  place_node_remove (c, n2);
  assert_int_equal (place_alloc_count (c), 1);
  assert_int_equal (place_node_find (c, "n2"), PLACE_NODE_NONE);
  r = place1 (c, &w);
  assert_string_equal (r.reason, "0/1 nodes: 1 insufficient cpu");
  /* Draining n1 and adding n3: new work goes to n3 only. */
  place_node_id_t n3 = add_node (c, "n3", 4000, 4 * GiB);
  place_node_set_state (c, n1, true, true);
  w.cpu_milli = 100;
  w.memory_bytes = 64 * MiB;
  assert_int_equal (place1 (c, &w).node, n3);
  place_cluster_free (c);
}

static void
t_invalid_input (void **state)
{
  (void) state;
  place_cluster_t *c = place_cluster_new (NULL);
  add_node (c, "n1", 2000, 2 * GiB);
  orch_err_t err = { 0 };
  place_node_spec_t dup = { .id = "n1", .ready = true, .runtimes = RT_BOTH, .cpu_milli = 1 };
  assert_int_equal (place_node_add (c, &dup, NULL, &err), -1);
  assert_string_equal (err.msg, "node n1 already exists");
  place_node_spec_t neg = { .id = "n9", .cpu_milli = -1 };
  assert_int_equal (place_node_add (c, &neg, NULL, &err), -1);
  place_alloc_spec_t a = { .service = "s", .node = 42, .isolation = ORCH_ISO_CONTAINER };
  assert_int_equal (place_alloc_add (c, &a, NULL, &err), -1);
  place_workload_t w[2] = { wl ("s", NULL, 100, 0, ORCH_ISO_CONTAINER),
                            wl ("s", NULL, 0, 64 * MiB, ORCH_ISO_CONTAINER) };
  place_result_t r[2];
  assert_int_equal (place_batch (c, w, 2, NULL, r, &err), 0);
  assert_string_equal (r[0].reason, "invalid workload: memory must be > 0");
  assert_string_equal (r[1].reason, "invalid workload: cpu must be > 0");
  assert_int_equal (place_batch (c, NULL, 1, NULL, r, &err), -1);
  place_cluster_free (c);
}

static void
t_from_spec (void **state)
{
  (void) state;
  orch_port_t ports[2] = { { .port = 80 }, { .port = 443 } };
  orch_spec_t s = { .name = "web",
                    .tenant = "acme",
                    .cpu_milli = 250,
                    .memory_bytes = 64 * MiB,
                    .isolation = ORCH_ISO_AUTO,
                    .untrusted = true,
                    .spread = true,
                    .ports = ports,
                    .n_ports = 2 };
  place_workload_t w;
  place_workload_from_spec (&s, &w);
  assert_string_equal (w.service, "web");
  assert_string_equal (w.tenant, "acme");
  assert_int_equal (w.cpu_milli, 250);
  assert_int_equal (w.memory_bytes, 64 * MiB);
  assert_int_equal (w.isolation, ORCH_ISO_AUTO);
  assert_true (w.untrusted);
  assert_true (w.spread);
  assert_int_equal (w.host_ports, 2);
}

/* Randomised: one workload at a time on a mixed cluster with churn; after
 * every step no node is over capacity, and a refusal means that no node
 * could take the workload in any isolation it allows. */
static void
t_random_never_overcommits_nor_refuses_wrongly (void **state)
{
  (void) state;
  enum
  {
    N = 2000
  };
  place_cluster_t *c = build_mixed ();
  place_workload_t *w = calloc (N, sizeof (*w));
  place_result_t *r = calloc (N, sizeof (*r));
  make_workloads (w, N, 99);
  place_batch_opts_t keep = { .keep_order = true };
  for (size_t i = 0; i < N; i++)
    {
      w[i].spread = false;
      assert_true (place_batch (c, &w[i], 1, &keep, &r[i], NULL) >= 0);
      if (i % 7 == 3 && r[i - 2].alloc != PLACE_ALLOC_NONE)
        {
          place_alloc_remove (c, r[i - 2].alloc);
          r[i - 2].alloc = PLACE_ALLOC_NONE;
        }
      for (place_node_id_t n = 0; n < 40; n++)
        {
          place_node_info_t info;
          place_node_info (c, n, &info);
          assert_true (info.cpu_reserved <= info.cpu_milli);
          assert_true (info.memory_effective <= info.memory_bytes);
        }
      if (r[i].node == PLACE_NODE_NONE)
        {
          /* Refused: no node has room even for the container form on a
           * node without another tenant's kernel. */
          for (place_node_id_t n = 0; n < 40; n++)
            {
              place_node_info_t info;
              place_node_info (c, n, &info);
              bool cpu_ok = info.cpu_milli - info.cpu_reserved >= w[i].cpu_milli;
              bool mem_ok = info.memory_bytes - info.memory_effective >= w[i].memory_bytes;
              bool kernel_ok = !info.kernel_tenant || strcmp (info.kernel_tenant, w[i].tenant) == 0;
              bool container_allowed = w[i].isolation == ORCH_ISO_CONTAINER
                                       || (w[i].isolation == ORCH_ISO_AUTO && !w[i].untrusted);
              if (container_allowed && cpu_ok && mem_ok && kernel_ok)
                fail_msg ("workload %zu refused (%s) but node %u has room", i, r[i].reason, n);
            }
        }
    }
  place_cluster_free (c);
  free (w);
  free (r);
}

static void
t_node_update_and_mixed_kernel (void **state)
{
  (void) state;
  place_cluster_t *c = place_cluster_new (NULL);
  place_node_id_t n = add_node_full (c, "n1", 4000, 4 * GiB, RT_BOTH, "zone=a");
  char *vb[] = { "b" };
  orch_constraint_t k
      = { .attribute = "label.zone", .op = ORCH_OP_EQ, .values = vb, .n_values = 1 };
  place_workload_t w = wl_con (&k);
  assert_int_equal (place1 (c, &w).node, PLACE_NODE_NONE);
  /* The node is relabelled: the same workload now fits. */
  place_label_t l = { "zone", "b" };
  place_node_spec_t s = { .id = "n1",
                          .labels = &l,
                          .n_labels = 1,
                          .ready = true,
                          .runtimes = RT_BOTH,
                          .cpu_milli = 4000,
                          .memory_bytes = 4 * GiB };
  orch_err_t err = { 0 };
  assert_int_equal (place_node_update (c, n, &s, &err), 0);
  place_result_t r = place1 (c, &w);
  assert_int_equal (r.node, n);
  /* Renaming through update is refused. */
  s.id = "other";
  assert_int_equal (place_node_update (c, n, &s, &err), -1);
  /* State from before the rule (two tenants' containers on one kernel):
   * no further container may join, a microVM may. */
  place_node_id_t m = add_node (c, "mixed", 8000, 8 * GiB);
  add_alloc (c, m, "x", "t1", ORCH_ISO_CONTAINER, 100, 64 * MiB);
  add_alloc (c, m, "y", "t2", ORCH_ISO_CONTAINER, 100, 64 * MiB);
  place_node_set_state (c, n, false, false);
  place_workload_t wc = wl ("z", "t1", 100, 64 * MiB, ORCH_ISO_CONTAINER);
  r = place1 (c, &wc);
  assert_string_equal (r.reason, "0/2 nodes: 1 not ready, 1 kernel shared with another tenant");
  wc.isolation = ORCH_ISO_AUTO;
  r = place1 (c, &wc);
  assert_int_equal (r.node, m);
  assert_int_equal (r.isolation, ORCH_ISO_MICROVM);
  assert_non_null (
      strstr (r.reason, "microvm: tenant t1 would share node mixed's kernel with several tenants"));
  place_cluster_free (c);
}

static const struct CMUnitTest tests[] = {
  cmocka_unit_test (t_best_fit_picks_tightest_node),
  cmocka_unit_test (t_node_in_use_before_empty_node),
  cmocka_unit_test (t_best_fit_both_dimensions),
  cmocka_unit_test (t_failure_reasons_aggregated),
  cmocka_unit_test (t_every_reason_counted),
  cmocka_unit_test (t_tenant_kernel_rule),
  cmocka_unit_test (t_auto_untrusted_is_microvm),
  cmocka_unit_test (t_auto_container_when_no_conflict),
  cmocka_unit_test (t_auto_microvm_on_tenant_conflict),
  cmocka_unit_test (t_vmm_overhead_charged),
  cmocka_unit_test (t_usage_above_requests),
  cmocka_unit_test (t_constraints),
  cmocka_unit_test (t_host_ports_counted),
  cmocka_unit_test (t_spread_vs_binpack),
  cmocka_unit_test (t_batch_sees_its_own_placements),
  cmocka_unit_test (t_deterministic_and_plan_matches_apply),
  cmocka_unit_test (t_pending_placed_when_room_appears),
  cmocka_unit_test (t_invalid_input),
  cmocka_unit_test (t_from_spec),
  cmocka_unit_test (t_random_never_overcommits_nor_refuses_wrongly),
  cmocka_unit_test (t_node_update_and_mixed_kernel),
};

ORCH_TEST_MAIN (tests)
