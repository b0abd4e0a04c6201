/* The record of an allocation in its directory (alloc.json): everything a
 * restarted agent needs to take the running workload back as the same
 * allocation — the scheduler's request (spec included), its published ports,
 * and how many restarts it has had since when. JSON, because an operator
 * reads it when something goes wrong. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_internal.h"
#include "orch_util.h"

void
agent_record_clear (agent_record_t *r)
{
  if (r == NULL)
    return;
  free (r->alloc_id);
  free (r->service);
  free (r->isolation);
  free (r->spec_json);
  free (r->ports);
  memset (r, 0, sizeof (*r));
}

static void
agent__json_decref (json_t **j)
{
  if (*j)
    json_decref (*j);
}
#define cleanup_json __attribute__ ((cleanup (agent__json_decref)))

int
agent_record_write (const char *alloc_dir, const agent_record_t *r, orch_err_t *err)
{
  cleanup_json json_t *o = json_object ();
  cleanup_free char *text = NULL;
  cleanup_free char *path = xasprintf ("%s/" AGENT_RECORD_FILE, alloc_dir);
  cleanup_free char *tmp = xasprintf ("%s/" AGENT_RECORD_FILE ".tmp", alloc_dir);
  cleanup_close int fd = -1;
  json_t *ports = json_array ();
  size_t i, len, off = 0;

  json_object_set_new (o, "alloc_id", json_string (r->alloc_id ? r->alloc_id : ""));
  json_object_set_new (o, "service", json_string (r->service ? r->service : ""));
  json_object_set_new (o, "isolation", json_string (r->isolation ? r->isolation : ""));
  json_object_set_new (o, "spec_json", json_string (r->spec_json ? r->spec_json : ""));
  /* Counters as strings, as etcd does: a JSON number loses 64-bit values. */
  json_object_set_new (o, "spec_version",
                       json_sprintf ("%llu", (unsigned long long) r->spec_version));
  json_object_set_new (o, "restarts", json_integer (r->restarts));
  json_object_set_new (o, "started_at_ms", json_sprintf ("%lld", (long long) r->started_at_ms));
  for (i = 0; i < r->n_ports; i++)
    json_array_append_new (ports, json_pack ("{s:i,s:i,s:s}", "port", (int) r->ports[i].port,
                                             "host_port", (int) r->ports[i].host_port, "protocol",
                                             r->ports[i].udp ? "udp" : "tcp"));
  json_object_set_new (o, "ports", ports);
  text = json_dumps (o, JSON_COMPACT | JSON_SORT_KEYS);
  if (text == NULL)
    return orch_err_set (err, ENOMEM, "alloc record: cannot encode");
  len = strlen (text);

  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return orch_err_sys (err, "open %s", tmp);
  while (off < len)
    {
      ssize_t n = write (fd, text + off, len - off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int e = errno;
          unlink (tmp);
          return orch_err_set (err, e, "write %s: %s", tmp, strerror (e));
        }
      off += (size_t) n;
    }
  if (rename (tmp, path) < 0)
    {
      int e = errno;
      unlink (tmp);
      return orch_err_set (err, e, "rename %s: %s", tmp, strerror (e));
    }
  return 0;
}

static int
agent__rec_str (json_t *o, const char *key, char **out, const char *path, orch_err_t *err)
{
  json_t *v = json_object_get (o, key);

  if (!json_is_string (v))
    return orch_err_set (err, EINVAL, "%s: \"%s\" is missing or not a string", path, key);
  *out = xstrdup (json_string_value (v));
  return 0;
}

static int
agent__rec_num (json_t *o, const char *key, long long lo, long long hi, long long *out,
                const char *path, orch_err_t *err)
{
  json_t *v = json_object_get (o, key);
  char *end;

  if (json_is_integer (v))
    *out = json_integer_value (v);
  else if (json_is_string (v))
    {
      errno = 0;
      *out = strtoll (json_string_value (v), &end, 10);
      if (errno != 0 || *end != '\0' || end == json_string_value (v))
        return orch_err_set (err, EINVAL, "%s: \"%s\" is not a number", path, key);
    }
  else
    return orch_err_set (err, EINVAL, "%s: \"%s\" is missing or not a number", path, key);
  if (*out < lo || *out > hi)
    return orch_err_set (err, ERANGE, "%s: \"%s\" is out of range", path, key);
  return 0;
}

int
agent_record_read (const char *alloc_dir, agent_record_t *r, orch_err_t *err)
{
  cleanup_free char *path = xasprintf ("%s/" AGENT_RECORD_FILE, alloc_dir);
  cleanup_free char *text = NULL;
  cleanup_json json_t *o = NULL;
  json_error_t jerr;
  json_t *ports;
  long long v;
  size_t len, i;
  int rc;

  memset (r, 0, sizeof (*r));
  rc = orch_read_file (path, AGENT_RECORD_MAX_BYTES, &text, &len);
  if (rc == -ENOENT)
    return 0;
  if (rc < 0)
    return orch_err_set (err, -rc, "read %s: %s", path, strerror (-rc));
  o = json_loadb (text, len, 0, &jerr);
  if (o == NULL || !json_is_object (o))
    return orch_err_set (err, EINVAL, "%s: not a JSON object (%s)", path,
                         o == NULL ? jerr.text : "wrong type");

  if (agent__rec_str (o, "alloc_id", &r->alloc_id, path, err) < 0
      || agent__rec_str (o, "service", &r->service, path, err) < 0
      || agent__rec_str (o, "isolation", &r->isolation, path, err) < 0
      || agent__rec_str (o, "spec_json", &r->spec_json, path, err) < 0)
    goto fail;
  if (agent__rec_num (o, "spec_version", 0, INT64_MAX, &v, path, err) < 0)
    goto fail;
  r->spec_version = (uint64_t) v;
  if (agent__rec_num (o, "restarts", 0, UINT32_MAX, &v, path, err) < 0)
    goto fail;
  r->restarts = (uint32_t) v;
  if (agent__rec_num (o, "started_at_ms", 0, INT64_MAX, &v, path, err) < 0)
    goto fail;
  r->started_at_ms = v;

  ports = json_object_get (o, "ports");
  if (ports != NULL && !json_is_array (ports))
    {
      orch_err_set (err, EINVAL, "%s: \"ports\" is not an array", path);
      goto fail;
    }
  if (json_array_size (ports) > AGENT_RECORD_MAX_PORTS)
    {
      orch_err_set (err, E2BIG, "%s: more than %d ports", path, AGENT_RECORD_MAX_PORTS);
      goto fail;
    }
  if (json_array_size (ports) > 0)
    r->ports = xcalloc (json_array_size (ports), sizeof (*r->ports));
  for (i = 0; i < json_array_size (ports); i++)
    {
      json_t *p = json_array_get (ports, i);
      json_t *proto = json_object_get (p, "protocol");
      long long port, host_port;

      if (!json_is_object (p) || agent__rec_num (p, "port", 1, 65535, &port, path, err) < 0
          || agent__rec_num (p, "host_port", 0, 65535, &host_port, path, err) < 0)
        {
          if (!json_is_object (p))
            orch_err_set (err, EINVAL, "%s: ports[%zu] is not an object", path, i);
          goto fail;
        }
      r->ports[i].port = (uint16_t) port;
      r->ports[i].host_port = (uint16_t) host_port;
      r->ports[i].udp = json_is_string (proto) && strcmp (json_string_value (proto), "udp") == 0;
      r->n_ports++;
    }
  if (!orch_is_dns_label (r->alloc_id))
    {
      orch_err_set (err, EINVAL, "%s: alloc_id \"%s\" is not a DNS label", path, r->alloc_id);
      goto fail;
    }
  return 1;

fail:
  agent_record_clear (r);
  return -1;
}
