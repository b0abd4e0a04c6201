/* Restart policy decisions (pure: no clock, no I/O), so the supervisor's
 * behaviour after an exit can be tested as a table. */
#include "agent_internal.h"

int64_t
agent_restart_backoff_ms (int64_t base_ms, uint32_t restarts_so_far)
{
  int64_t d = base_ms > AGENT_RESTART_MIN_BACKOFF_MS ? base_ms : AGENT_RESTART_MIN_BACKOFF_MS;
  uint32_t i;

  if (d >= AGENT_RESTART_MAX_BACKOFF_MS)
    return AGENT_RESTART_MAX_BACKOFF_MS;
  /* Doubling stops at the cap, so the loop is short and never overflows. */
  for (i = 0; i < restarts_so_far; i++)
    {
      d *= 2;
      if (d >= AGENT_RESTART_MAX_BACKOFF_MS)
        return AGENT_RESTART_MAX_BACKOFF_MS;
    }
  return d;
}

bool
agent_restart_decide (orch_restart_policy_t policy, uint32_t max_restarts, uint32_t restarts_so_far,
                      bool failed, int64_t base_backoff_ms, int64_t *delay_ms)
{
  switch (policy)
    {
    case ORCH_RESTART_NEVER:
      return false;
    case ORCH_RESTART_ON_FAILURE:
      if (!failed)
        return false;
      break;
    case ORCH_RESTART_ALWAYS:
      break;
    default:
      return false;
    }
  if (restarts_so_far >= max_restarts)
    return false;
  *delay_ms = agent_restart_backoff_ms (base_backoff_ms, restarts_so_far);
  return true;
}
