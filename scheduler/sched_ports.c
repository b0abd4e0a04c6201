/* Host ports: every published port of a bridge-networked allocation gets a
 * port on its node's address from the node's range, and no two allocations
 * on a node hold the same one. The placement engine counts free ports per
 * node (a feasibility check); this file picks the concrete numbers. */
#include <string.h>

#include "orch_util.h"
#include "sched_internal.h"

#define SCHED_PORT_MIN 30000
#define SCHED_PORT_MAX 32767
#define PORT_RANGE (SCHED_PORT_MAX - SCHED_PORT_MIN + 1)

static bool
port_used (const sched_node_t *n, uint16_t port)
{
  unsigned i = port - SCHED_PORT_MIN;
  return n->ports_used && (n->ports_used[i / 8] >> (i % 8)) & 1;
}

static void
port_set (sched_node_t *n, uint16_t port, bool used)
{
  if (port < SCHED_PORT_MIN || port > SCHED_PORT_MAX)
    return;
  if (n->ports_used == NULL)
    n->ports_used = xcalloc ((PORT_RANGE + 7) / 8, 1);
  unsigned i = port - SCHED_PORT_MIN;
  if (used)
    n->ports_used[i / 8] |= (uint8_t) (1u << (i % 8));
  else
    n->ports_used[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

void
sched_ports_hold (sched_node_t *n, const sched_alloc_t *a)
{
  for (size_t i = 0; i < a->n_ports; i++)
    port_set (n, a->ports[i].host_port, true);
}

void
sched_ports_release (sched_node_t *n, const sched_alloc_t *a)
{
  for (size_t i = 0; i < a->n_ports; i++)
    port_set (n, a->ports[i].host_port, false);
}

void
sched_ports_clear (sched_alloc_t *a)
{
  for (size_t i = 0; i < a->n_ports; i++)
    free (a->ports[i].name);
  free (a->ports);
  a->ports = NULL;
  a->n_ports = 0;
}

int
sched_ports_assign (sched_node_t *n, sched_alloc_t *a, const orch_spec_t *spec)
{
  sched_ports_clear (a);
  if (spec->n_ports == 0)
    return 0;
  a->ports = xcalloc (spec->n_ports, sizeof *a->ports);
  /* Start after the node's last pick so that a port just freed is not
   * handed out again at once (a client may still be talking to it). */
  unsigned cursor = n->ports_cursor;
  for (size_t i = 0; i < spec->n_ports; i++)
    {
      sched_port_t *p = &a->ports[a->n_ports];
      p->name = xstrdup (spec->ports[i].name ? spec->ports[i].name : "");
      p->port = spec->ports[i].port;
      snprintf (p->protocol, sizeof p->protocol, "%s",
                spec->ports[i].protocol ? spec->ports[i].protocol : "tcp");
      a->n_ports++;
      if (spec->network == ORCH_NET_HOST)
        {
          p->host_port = p->port; /* the workload binds the node's port itself */
          continue;
        }
      unsigned tries = 0;
      while (tries < PORT_RANGE && port_used (n, (uint16_t) (SCHED_PORT_MIN + cursor)))
        {
          cursor = (cursor + 1) % PORT_RANGE;
          tries++;
        }
      if (tries == PORT_RANGE)
        {
          sched_ports_release (n, a);
          sched_ports_clear (a);
          return -1;
        }
      p->host_port = (uint16_t) (SCHED_PORT_MIN + cursor);
      port_set (n, p->host_port, true);
      cursor = (cursor + 1) % PORT_RANGE;
    }
  n->ports_cursor = cursor;
  return 0;
}

void
sched_ports_fill_msg (const sched_alloc_t *a, Orch__PortMapping *pm, Orch__PortMapping **ptrs)
{
  for (size_t i = 0; i < a->n_ports; i++)
    {
      orch__port_mapping__init (&pm[i]);
      pm[i].name = a->ports[i].name;
      pm[i].port = a->ports[i].port;
      pm[i].host_port = a->ports[i].host_port;
      pm[i].protocol = (char *) a->ports[i].protocol;
      ptrs[i] = &pm[i];
    }
}
