/* orch-image: the writing half of a node's image store (image.h) as a
 * program. The agent runs it for every pull and garbage collection
 * (agent_image.c), one short-lived process per operation, so that the
 * daemon never loads libcurl, libarchive or OpenSSL; operators may run it
 * on the node too.
 *
 * The contract with the agent: success prints the result on stdout (a
 * rootfs path for pull/import) and exits 0; failure prints one line
 * "orch-image: error: MESSAGE" on stderr and exits 1 (75 when the store is
 * busy, 2 on a usage error); SIGTERM cancels a pull cleanly. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image_internal.h"
#include "orch_quantity.h"
#include "orch_util.h"

#define IMAGE_EXIT_FAIL 1
#define IMAGE_EXIT_USAGE 2
#define IMAGE_EXIT_BUSY 75 /* EX_TEMPFAIL: try again later */
#define IMAGE_MAX_INSECURE 16

static const char image_usage[]
    = "Usage: orch-image [--state-dir DIR] [-o text|json] COMMAND [ARGS]\n"
      "\n"
      "Works on a node's content-addressed image store, the one orch-agent starts\n"
      "workloads from. orch-agent runs it by itself to pull images and to collect\n"
      "unused ones; run it by hand on the node, as the agent's user, to prepare or\n"
      "inspect the store.\n"
      "\n"
      "Commands:\n"
      "  pull REF            make REF available: fetch it from its registry unless the\n"
      "                      store has it (see --policy); every blob's sha256 is\n"
      "                      verified. Prints the image's root filesystem.\n"
      "  import REF SOURCE   SOURCE is a root filesystem (directory or tar, any\n"
      "                      compression), a docker-archive (`docker save`) or an OCI\n"
      "                      image layout (directory or tar). Prints the root\n"
      "                      filesystem.\n"
      "  inspect REF         the image's id, manifest, root filesystem, size, last use\n"
      "  untag REF           remove the reference (gc removes the image later)\n"
      "  gc --budget SIZE [--in-use REF|ID|ROOTFS]...\n"
      "                      remove blobs no reference needs, then whole images, least\n"
      "                      recently used first, until the store fits SIZE (e.g.\n"
      "                      20Gi); never an image named by --in-use\n"
      "\n"
      "Options:\n"
      "  --state-dir DIR           the agent's state directory (default:\n"
      "                            $ORCH_STATE_DIR, else /var/lib/orch)\n"
      "  -o, --output text|json    output format (default text)\n"
      "  --policy if-missing|always|never\n"
      "                            pull: if-missing (default) uses the store's copy\n"
      "                            when there is one; always asks the registry again\n"
      "                            (blobs already held are not fetched twice); never\n"
      "                            only looks in the store\n"
      "  --insecure-registry HOST  pull: allow plain http to HOST[:PORT] (repeatable;\n"
      "                            loopback registries always may)\n"
      "  --default-registry HOST   pull: the registry of a name that has none\n"
      "  --ca-file PEM             pull: extra CA certificates for https\n"
      "  --user NAME               pull: registry user; the password is read from\n"
      "                            $ORCH_REGISTRY_PASSWORD (never from the command line)\n"
      "  --max-blob SIZE           pull: largest blob accepted (default 4Gi)\n"
      "  --timeout SECONDS         pull: connect timeout and stall limit (default 30)\n"
      "  -h, --help                this text\n"
      "\n"
      "Exit status: 0 success, 1 failure (the reason on stderr), 2 usage error,\n"
      "75 the store is busy (gc while a pull or import runs; try again later).\n"
      "SIGTERM or SIGINT cancels a pull and leaves nothing half-written.\n"
      "\n"
      "Examples:\n"
      "  orch-image pull localhost:5000/busybox:1.36\n"
      "  orch-image import app:1.0 ./app-docker-save.tar\n"
      "  orch-image -o json inspect busybox\n"
      "  orch-image gc --budget 10Gi --in-use busybox\n";

typedef struct image_cli_s
{
  const char *state_dir;
  bool json;
  image_pull_opts_t pull;
  const char *insecure[IMAGE_MAX_INSECURE + 1];
  size_t n_insecure;
  int64_t budget; /* gc; -1: not given */
  const char **in_use;
  size_t n_in_use;
} image_cli_t;

static volatile int image_cancel;

static void
image_on_signal (int sig)
{
  (void) sig;
  image_cancel = 1;
}

static int __attribute__ ((format (printf, 1, 2)))
image_usage_error (const char *fmt, ...)
{
  va_list ap;
  fputs ("orch-image: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputs ("\nTry 'orch-image --help' for more information.\n", stderr);
  return IMAGE_EXIT_USAGE;
}

static int
image_fail (const orch_err_t *err)
{
  fprintf (stderr, "orch-image: error: %s\n", err->msg);
  return err->code == EAGAIN ? IMAGE_EXIT_BUSY : IMAGE_EXIT_FAIL;
}

static void
image_print_json (json_t *o)
{
  char *s = json_dumps (o, JSON_COMPACT);
  puts (s);
  free (s);
  json_decref (o);
}

static int
image_print_rootfs (const image_cli_t *c, const char *ref, const char *rootfs)
{
  if (!c->json)
    {
      puts (rootfs);
      return 0;
    }
  /* The ids without image_inspect's walk over the whole tree. */
  image_refrec_t rec;
  orch_err_t err = { 0 };
  cleanup_free char *found = NULL;
  json_t *o = json_pack ("{s:s, s:s}", "ref", ref, "rootfs", rootfs);
  if (image__find (c->state_dir, ref, &found, &rec, &err) == 0)
    {
      json_object_set_new (o, "id", json_string (rec.id));
      json_object_set_new (o, "manifest", json_string (rec.manifest));
    }
  image_print_json (o);
  return 0;
}

static int
image_cmd_pull (image_cli_t *c, const char *ref)
{
  cleanup_free char *rootfs = NULL;
  orch_err_t err = { 0 };
  struct sigaction sa = { .sa_handler = image_on_signal };

  /* Cancel between chunks instead of dying with work directories left. */
  sigemptyset (&sa.sa_mask);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
  c->pull.cancel = &image_cancel;
  const char *password = getenv ("ORCH_REGISTRY_PASSWORD");
  c->pull.password = password != NULL && *password != '\0' ? password : NULL;
  if (image_ensure (c->state_dir, ref, &c->pull, &rootfs, &err) < 0)
    return image_fail (&err);
  return image_print_rootfs (c, ref, rootfs);
}

static int
image_cmd_import (image_cli_t *c, const char *ref, const char *source)
{
  orch_err_t err = { 0 };
  if (image_import (c->state_dir, ref, source, &err) < 0)
    {
      orch_err_wrap (&err, "import %s from %s", ref, source);
      return image_fail (&err);
    }
  cleanup_free char *rootfs = image_rootfs (c->state_dir, ref, &err);
  if (rootfs == NULL)
    return image_fail (&err);
  return image_print_rootfs (c, ref, rootfs);
}

static int
image_cmd_inspect (image_cli_t *c, const char *ref)
{
  image_info_t info;
  orch_err_t err = { 0 };
  char size[32];
  if (image_inspect (c->state_dir, ref, &info, &err) < 0)
    return image_fail (&err);
  if (c->json)
    image_print_json (json_pack ("{s:s, s:s, s:s, s:s, s:I, s:I}", "ref", ref, "id", info.id,
                                 "manifest", info.manifest, "rootfs", info.rootfs, "size_bytes",
                                 (json_int_t) info.size, "used_ms", (json_int_t) info.used_ms));
  else
    printf ("Ref:       %s\nId:        %s\nManifest:  %s\nRootfs:    %s\nSize:      %s\n", ref,
            info.id, info.manifest[0] ? info.manifest : "-", info.rootfs,
            orch_fmt_memory ((int64_t) info.size, size, sizeof size));
  image_info_free (&info);
  return 0;
}

static int
image_cmd_untag (image_cli_t *c, const char *ref)
{
  orch_err_t err = { 0 };
  if (image_untag (c->state_dir, ref, &err) < 0)
    return image_fail (&err);
  if (c->json)
    image_print_json (json_pack ("{s:s, s:b}", "ref", ref, "untagged", 1));
  else
    printf ("untagged %s\n", ref);
  return 0;
}

static int
image_cmd_gc (image_cli_t *c)
{
  image_gc_stats_t st = { 0 };
  orch_err_t err = { 0 };
  char before[32], after[32];
  if (c->budget < 0)
    return image_usage_error ("gc needs --budget SIZE");
  if (image_gc (c->state_dir, (uint64_t) c->budget, c->in_use, c->n_in_use, &st, &err) < 0)
    return image_fail (&err);
  if (c->json)
    image_print_json (json_pack ("{s:I, s:I, s:i, s:i}", "bytes_before",
                                 (json_int_t) st.bytes_before, "bytes_after",
                                 (json_int_t) st.bytes_after, "images_removed",
                                 (int) st.images_removed, "blobs_removed", (int) st.blobs_removed));
  else
    printf ("removed %u image(s) and %u blob(s); store %s -> %s\n", st.images_removed,
            st.blobs_removed, orch_fmt_memory ((int64_t) st.bytes_before, before, sizeof before),
            orch_fmt_memory ((int64_t) st.bytes_after, after, sizeof after));
  return 0;
}

/* Every option, wherever it stands; the command and its operands are left
 * in argv[optind..]. */
static int
image_parse (image_cli_t *c, int argc, char **argv)
{
  enum
  {
    OPT_STATE = 256,
    OPT_POLICY,
    OPT_INSECURE,
    OPT_DEFAULT_REG,
    OPT_CA,
    OPT_USER,
    OPT_MAX_BLOB,
    OPT_TIMEOUT,
    OPT_BUDGET,
    OPT_IN_USE,
  };
  static const struct option opts[] = {
    { "state-dir", required_argument, NULL, OPT_STATE },
    { "output", required_argument, NULL, 'o' },
    { "policy", required_argument, NULL, OPT_POLICY },
    { "insecure-registry", required_argument, NULL, OPT_INSECURE },
    { "default-registry", required_argument, NULL, OPT_DEFAULT_REG },
    { "ca-file", required_argument, NULL, OPT_CA },
    { "user", required_argument, NULL, OPT_USER },
    { "max-blob", required_argument, NULL, OPT_MAX_BLOB },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "budget", required_argument, NULL, OPT_BUDGET },
    { "in-use", required_argument, NULL, OPT_IN_USE },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int opt;
  int64_t v;
  char *end;

  while ((opt = getopt_long (argc, argv, ":o:h", opts, NULL)) != -1)
    switch (opt)
      {
      case OPT_STATE:
        if (*optarg == '\0')
          return image_usage_error ("--state-dir must not be empty");
        c->state_dir = optarg;
        break;
      case 'o':
        if (strcmp (optarg, "json") != 0 && strcmp (optarg, "text") != 0)
          return image_usage_error ("-o: unknown format '%s' (text or json)", optarg);
        c->json = strcmp (optarg, "json") == 0;
        break;
      case OPT_POLICY:
        if (strcmp (optarg, "if-missing") == 0)
          c->pull.policy = IMAGE_PULL_IF_MISSING;
        else if (strcmp (optarg, "always") == 0)
          c->pull.policy = IMAGE_PULL_ALWAYS;
        else if (strcmp (optarg, "never") == 0)
          c->pull.policy = IMAGE_PULL_NEVER;
        else
          return image_usage_error ("--policy: '%s' is not if-missing, always or never", optarg);
        break;
      case OPT_INSECURE:
        if (c->n_insecure == IMAGE_MAX_INSECURE)
          return image_usage_error ("--insecure-registry: at most %d", IMAGE_MAX_INSECURE);
        c->insecure[c->n_insecure++] = optarg;
        break;
      case OPT_DEFAULT_REG:
        c->pull.default_registry = optarg;
        break;
      case OPT_CA:
        c->pull.ca_file = optarg;
        break;
      case OPT_USER:
        c->pull.username = optarg;
        break;
      case OPT_MAX_BLOB:
        if (orch_parse_memory_bytes (optarg, &v) < 0 || v <= 0)
          return image_usage_error ("--max-blob: '%s' is not a size (e.g. 512Mi)", optarg);
        c->pull.max_blob_bytes = (uint64_t) v;
        break;
      case OPT_TIMEOUT:
        errno = 0;
        v = strtoll (optarg, &end, 10);
        if (errno != 0 || *end != '\0' || v < 1 || v > 3600)
          return image_usage_error ("--timeout: '%s' is not 1 to 3600 seconds", optarg);
        c->pull.timeout_s = (long) v;
        break;
      case OPT_BUDGET:
        if (orch_parse_memory_bytes (optarg, &v) < 0 || v < 0)
          return image_usage_error ("--budget: '%s' is not a size (e.g. 20Gi)", optarg);
        c->budget = v;
        break;
      case OPT_IN_USE:
        c->in_use = xrealloc (c->in_use, (c->n_in_use + 1) * sizeof (char *));
        c->in_use[c->n_in_use++] = optarg;
        break;
      case 'h':
        fputs (image_usage, stdout);
        exit (0);
      case ':':
        return image_usage_error ("option '%s' needs a value", argv[optind - 1]);
      default:
        return image_usage_error ("unknown option '%s'", argv[optind - 1]);
      }
  c->pull.insecure_registries = c->insecure;
  return 0;
}

static int
image_want_operands (int have, int want, const char *cmd, const char *what)
{
  if (have < want)
    return image_usage_error ("%s needs %s", cmd, what);
  if (have > want)
    return image_usage_error ("%s: unexpected argument", cmd);
  return 0;
}

int
main (int argc, char **argv)
{
  const char *env_dir = getenv ("ORCH_STATE_DIR");
  image_cli_t c = {
    .state_dir = env_dir != NULL && *env_dir != '\0' ? env_dir : "/var/lib/orch",
    .budget = -1,
  };
  int r = image_parse (&c, argc, argv);
  if (r != 0)
    goto out;
  if (optind >= argc)
    {
      r = image_usage_error ("missing command (pull, import, inspect, untag or gc)");
      goto out;
    }
  const char *cmd = argv[optind];
  char **ops = argv + optind + 1;
  int n = argc - optind - 1;
  if (strcmp (cmd, "pull") == 0)
    r = image_want_operands (n, 1, cmd, "a REF") ?: image_cmd_pull (&c, ops[0]);
  else if (strcmp (cmd, "import") == 0)
    r = image_want_operands (n, 2, cmd, "REF and SOURCE") ?: image_cmd_import (&c, ops[0], ops[1]);
  else if (strcmp (cmd, "inspect") == 0)
    r = image_want_operands (n, 1, cmd, "a REF") ?: image_cmd_inspect (&c, ops[0]);
  else if (strcmp (cmd, "untag") == 0)
    r = image_want_operands (n, 1, cmd, "a REF") ?: image_cmd_untag (&c, ops[0]);
  else if (strcmp (cmd, "gc") == 0)
    r = image_want_operands (n, 0, cmd, "") ?: image_cmd_gc (&c);
  else
    r = image_usage_error ("unknown command '%s' (pull, import, inspect, untag or gc)", cmd);
out:
  free (c.in_use);
  return r;
}
