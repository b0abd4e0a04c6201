/* Runtimes by name. */
#include <stddef.h>
#include <string.h>

#include "orch_util.h"
#include "rt.h"

static const rt_ops_t *const rt_all[] = {
  &rt_container_ops,
  &rt_microvm_ops,
};

const rt_ops_t *
rt_lookup (const char *name)
{
  if (name == NULL)
    return NULL;
  for (size_t i = 0; i < ORCH_ARRAY_LEN (rt_all); i++)
    if (strcmp (rt_all[i]->name, name) == 0)
      return rt_all[i];
  return NULL;
}
