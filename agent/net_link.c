/* rtnetlink through libmnl: links, addresses and routes, in the agent's
 * network namespace or in a workload's. One request at a time, each
 * acknowledged, so every error comes back tied to the step that caused it. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net_internal.h"
#include "orch_util.h"

struct net_nl_s
{
  struct mnl_socket *sock;
  uint32_t portid;
  uint32_t seq;
  char ext[256];   /* the kernel's extended ack text for the last error, "" when none */
  char buf[16384]; /* replies here are single messages of a few KiB */
};

typedef struct ns_open_s
{
  int nsfd;
  struct mnl_socket *sock;
  int err;
} ns_open_t;

/* Runs on its own thread: entering the namespace changes only this thread,
 * and the socket keeps the namespace it was created in after the thread
 * is gone. */
static void *
ns_open_thread (void *arg)
{
  ns_open_t *o = arg;

  if (setns (o->nsfd, CLONE_NEWNET) < 0)
    {
      o->err = errno;
      return NULL;
    }
  o->sock = mnl_socket_open2 (NETLINK_ROUTE, SOCK_CLOEXEC);
  if (o->sock == NULL)
    o->err = errno;
  return NULL;
}

net_nl_t *
net__nl_open (int nsfd, orch_err_t *err)
{
  net_nl_t *nl;
  struct mnl_socket *sock;

  if (nsfd >= 0)
    {
      ns_open_t o = { .nsfd = nsfd, .sock = NULL, .err = 0 };
      pthread_t th;
      int r;

      r = pthread_create (&th, NULL, ns_open_thread, &o);
      if (r != 0)
        {
          errno = r;
          orch_err_sys (err, "start thread to enter network namespace");
          return NULL;
        }
      pthread_join (th, NULL);
      if (o.sock == NULL)
        {
          errno = o.err;
          orch_err_sys (err, "open netlink socket in network namespace");
          return NULL;
        }
      sock = o.sock;
    }
  else
    {
      sock = mnl_socket_open2 (NETLINK_ROUTE, SOCK_CLOEXEC);
      if (sock == NULL)
        {
          orch_err_sys (err, "open netlink socket");
          return NULL;
        }
    }
  if (mnl_socket_bind (sock, 0, MNL_SOCKET_AUTOPID) < 0)
    {
      orch_err_sys (err, "bind netlink socket");
      mnl_socket_close (sock);
      return NULL;
    }
  {
    /* Ask the kernel to say why, not only which errno. */
    int one = 1;

    (void) mnl_socket_setsockopt (sock, NETLINK_EXT_ACK, &one, sizeof one);
  }
  nl = xcalloc (1, sizeof *nl);
  nl->sock = sock;
  nl->portid = mnl_socket_get_portid (sock);
  nl->seq = (uint32_t) getpid ();
  return nl;
}

void
net__nl_close (net_nl_t *nl)
{
  if (nl == NULL)
    return;
  mnl_socket_close (nl->sock);
  free (nl);
}

/* Reads an error message: its errno (0 for an ack) and the extended ack
 * text, if any, into nl->ext. */
static int
parse_error (net_nl_t *nl, const struct nlmsghdr *h)
{
  const struct nlmsgerr *e = mnl_nlmsg_get_payload (h);
  size_t off;

  if (h->nlmsg_len < mnl_nlmsg_size (sizeof *e))
    return -EBADMSG;
  if (e->error == 0 || !(h->nlmsg_flags & NLM_F_ACK_TLVS))
    return e->error;
  /* The TLVs follow the echoed request: its header only when capped. */
  off = sizeof *e;
  if (!(h->nlmsg_flags & NLM_F_CAPPED))
    off += e->msg.nlmsg_len - sizeof e->msg;
  if (mnl_nlmsg_size (off) <= h->nlmsg_len)
    {
      const struct nlattr *attr;

      mnl_attr_for_each (attr, h, off)
      {
        if (mnl_attr_get_type (attr) == NLMSGERR_ATTR_MSG
            && mnl_attr_validate (attr, MNL_TYPE_NUL_STRING) >= 0)
          snprintf (nl->ext, sizeof nl->ext, "%s", mnl_attr_get_str (attr));
      }
    }
  return e->error;
}

typedef struct talk_s
{
  net_nl_t *nl;
  mnl_cb_t cb;
  void *data;
  int error;
} talk_t;

static int
talk_data_cb (const struct nlmsghdr *nlh, void *data)
{
  talk_t *t = data;

  return t->cb != NULL ? t->cb (nlh, t->data) : MNL_CB_OK;
}

static int
talk_error_cb (const struct nlmsghdr *nlh, void *data)
{
  talk_t *t = data;

  t->error = parse_error (t->nl, nlh);
  return t->error == 0 ? MNL_CB_STOP : MNL_CB_ERROR;
}

static int
talk_done_cb (const struct nlmsghdr *nlh, void *data)
{
  return MNL_CB_STOP;
}

/* With a control array, libmnl leaves every control type without an entry
 * unhandled: DONE must stop too. */
static mnl_cb_t talk_ctl[NLMSG_MIN_TYPE] = {
  [NLMSG_ERROR] = talk_error_cb,
  [NLMSG_DONE] = talk_done_cb,
};

const char *
net__nl_ext (const net_nl_t *nl)
{
  return nl->ext;
}

/* Sends one request with an ack asked for and reads until the ack. Returns
 * 0 or -errno (the kernel's answer). cb sees any data messages. */
static int
talk (net_nl_t *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
  talk_t t = { .nl = nl, .cb = cb, .data = data, .error = 0 };
  uint32_t seq;
  ssize_t n;
  int r;

  nl->ext[0] = '\0';
  nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = seq = ++nl->seq;
  if (mnl_socket_sendto (nl->sock, nlh, nlh->nlmsg_len) < 0)
    return -errno;
  /* The request lives in nl->buf, which the replies overwrite. */
  for (;;)
    {
      n = mnl_socket_recvfrom (nl->sock, nl->buf, sizeof nl->buf);
      if (n < 0)
        return -errno;
      r = mnl_cb_run2 (nl->buf, (size_t) n, seq, nl->portid, talk_data_cb, &t, talk_ctl,
                       NLMSG_MIN_TYPE);
      if (r == MNL_CB_ERROR)
        return t.error < 0 ? t.error : errno != 0 ? -errno : -EIO;
      if (r == MNL_CB_STOP)
        return 0;
    }
}

static struct nlmsghdr *
link_msg (net_nl_t *nl, uint16_t type, uint16_t flags, int ifindex)
{
  struct nlmsghdr *nlh = mnl_nlmsg_put_header (nl->buf);
  struct ifinfomsg *ifm;

  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = flags;
  ifm = mnl_nlmsg_put_extra_header (nlh, sizeof *ifm);
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = ifindex;
  return nlh;
}

typedef struct link_info_s
{
  int index;
  unsigned flags;
  int master;
  char *alias;
  size_t alias_len;
  char kind[16]; /* IFLA_INFO_KIND: "bridge", "veth", "tun", ... */
} link_info_t;

static int
linkinfo_attr_cb (const struct nlattr *attr, void *data)
{
  link_info_t *li = data;

  if (mnl_attr_get_type (attr) == IFLA_INFO_KIND && mnl_attr_validate (attr, MNL_TYPE_STRING) >= 0)
    snprintf (li->kind, sizeof li->kind, "%.*s",
              (int) strnlen (mnl_attr_get_payload (attr), mnl_attr_get_payload_len (attr)),
              (const char *) mnl_attr_get_payload (attr));
  return MNL_CB_OK;
}

static int
link_attr_cb (const struct nlattr *attr, void *data)
{
  link_info_t *li = data;

  if (mnl_attr_type_valid (attr, IFLA_MAX) < 0)
    return MNL_CB_OK;
  switch (mnl_attr_get_type (attr))
    {
    case IFLA_MASTER:
      if (mnl_attr_validate (attr, MNL_TYPE_U32) >= 0)
        li->master = (int) mnl_attr_get_u32 (attr);
      break;
    case IFLA_LINKINFO:
      mnl_attr_parse_nested (attr, linkinfo_attr_cb, li);
      break;
    case IFLA_IFALIAS:
      if (li->alias != NULL && mnl_attr_validate (attr, MNL_TYPE_STRING) >= 0)
        snprintf (li->alias, li->alias_len, "%.*s", (int) mnl_attr_get_payload_len (attr),
                  (const char *) mnl_attr_get_payload (attr));
      break;
    default:
      break;
    }
  return MNL_CB_OK;
}

static int
link_cb (const struct nlmsghdr *nlh, void *data)
{
  link_info_t *li = data;
  const struct ifinfomsg *ifm = mnl_nlmsg_get_payload (nlh);

  if (nlh->nlmsg_type != RTM_NEWLINK)
    return MNL_CB_OK;
  li->index = ifm->ifi_index;
  li->flags = ifm->ifi_flags;
  return mnl_attr_parse (nlh, sizeof *ifm, link_attr_cb, li);
}

int
net__nl_link_get (net_nl_t *nl, const char *name, char *alias, size_t alias_len, unsigned *flags,
                  int *master)
{
  struct nlmsghdr *nlh = link_msg (nl, RTM_GETLINK, 0, 0);
  link_info_t li = { .index = 0, .flags = 0, .master = 0, .alias = alias, .alias_len = alias_len };
  int r;

  if (alias != NULL && alias_len > 0)
    alias[0] = '\0';
  mnl_attr_put_strz (nlh, IFLA_IFNAME, name);
  mnl_attr_put_u32 (nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  r = talk (nl, nlh, link_cb, &li);
  if (r < 0)
    return r;
  if (li.index <= 0)
    return -ENODEV;
  if (flags != NULL)
    *flags = li.flags;
  if (master != NULL)
    *master = li.master;
  return li.index;
}

int
net__nl_bridge_ensure (net_nl_t *nl, const char *name)
{
  struct nlmsghdr *nlh = link_msg (nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
  struct nlattr *info;
  uint8_t mac[6];
  uint32_t h = 2166136261u;
  const unsigned char *p;
  int r;

  /* A bridge without an address of its own takes the lowest of its ports'
   * and changes it as workloads come and go, which breaks their ARP caches.
   * A fixed, locally administered one derived from the name stays. */
  for (p = (const unsigned char *) name; *p != '\0'; p++)
    {
      h ^= *p;
      h *= 16777619u;
    }
  mac[0] = 0x02;
  mac[1] = 0x42;
  mac[2] = (uint8_t) (h >> 24);
  mac[3] = (uint8_t) (h >> 16);
  mac[4] = (uint8_t) (h >> 8);
  mac[5] = (uint8_t) h;
  mnl_attr_put_strz (nlh, IFLA_IFNAME, name);
  mnl_attr_put (nlh, IFLA_ADDRESS, sizeof mac, mac);
  info = mnl_attr_nest_start (nlh, IFLA_LINKINFO);
  mnl_attr_put_strz (nlh, IFLA_INFO_KIND, "bridge");
  mnl_attr_nest_end (nlh, info);
  r = talk (nl, nlh, NULL, NULL);
  if (r < 0 && r != -EEXIST)
    return r;
  {
    struct nlmsghdr *get = link_msg (nl, RTM_GETLINK, 0, 0);
    link_info_t li = { .index = 0 };

    mnl_attr_put_strz (get, IFLA_IFNAME, name);
    mnl_attr_put_u32 (get, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    r = talk (nl, get, link_cb, &li);
    if (r < 0)
      return r;
    if (li.index <= 0)
      return -ENODEV;
    /* An existing link of that name that is not a bridge is not ours. */
    if (strcmp (li.kind, "bridge") != 0)
      return -EEXIST;
    return li.index;
  }
}

int
net__nl_link_set (net_nl_t *nl, int ifindex, int up, int master, const char *alias)
{
  struct nlmsghdr *nlh = link_msg (nl, RTM_NEWLINK, 0, ifindex);
  struct ifinfomsg *ifm = mnl_nlmsg_get_payload (nlh);

  if (up)
    {
      ifm->ifi_flags = IFF_UP;
      ifm->ifi_change = IFF_UP;
    }
  if (master > 0)
    mnl_attr_put_u32 (nlh, IFLA_MASTER, (uint32_t) master);
  if (alias != NULL)
    mnl_attr_put_strz (nlh, IFLA_IFALIAS, alias);
  return talk (nl, nlh, NULL, NULL);
}

int
net__nl_link_rename (net_nl_t *nl, int ifindex, const char *name)
{
  struct nlmsghdr *nlh = link_msg (nl, RTM_NEWLINK, 0, ifindex);

  mnl_attr_put_strz (nlh, IFLA_IFNAME, name);
  return talk (nl, nlh, NULL, NULL);
}

int
net__nl_link_del (net_nl_t *nl, const char *name)
{
  struct nlmsghdr *nlh = link_msg (nl, RTM_DELLINK, 0, 0);

  mnl_attr_put_strz (nlh, IFLA_IFNAME, name);
  return talk (nl, nlh, NULL, NULL);
}

int
net__nl_veth_create (net_nl_t *nl, const char *name, int master, const char *alias,
                     const char *peer, const uint8_t *peer_mac, pid_t ns_pid, int ns_fd)
{
  struct nlmsghdr *nlh = link_msg (nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
  struct ifinfomsg *ifm = mnl_nlmsg_get_payload (nlh);
  struct ifinfomsg *pifm;
  struct nlattr *info, *data, *pinfo;
  int r;

  /* Up and on the bridge in the same request that creates it. */
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;
  mnl_attr_put_strz (nlh, IFLA_IFNAME, name);
  if (master > 0)
    mnl_attr_put_u32 (nlh, IFLA_MASTER, (uint32_t) master);
  info = mnl_attr_nest_start (nlh, IFLA_LINKINFO);
  mnl_attr_put_strz (nlh, IFLA_INFO_KIND, "veth");
  data = mnl_attr_nest_start (nlh, IFLA_INFO_DATA);
  pinfo = mnl_attr_nest_start (nlh, VETH_INFO_PEER);
  /* The peer's attributes follow an ifinfomsg of their own. */
  pifm = mnl_nlmsg_get_payload_tail (nlh);
  memset (pifm, 0, MNL_ALIGN (sizeof *pifm));
  pifm->ifi_family = AF_UNSPEC;
  /* Not up yet: a veth cannot open before its pair is complete. */
  nlh->nlmsg_len += MNL_ALIGN (sizeof *pifm);
  mnl_attr_put_strz (nlh, IFLA_IFNAME, peer);
  if (peer_mac != NULL)
    mnl_attr_put (nlh, IFLA_ADDRESS, 6, peer_mac);
  /* The peer is born in the workload's namespace: no moment where it sits
   * in the node's namespace under a name that could clash. */
  if (ns_pid > 0)
    mnl_attr_put_u32 (nlh, IFLA_NET_NS_PID, (uint32_t) ns_pid);
  else if (ns_fd >= 0)
    mnl_attr_put_u32 (nlh, IFLA_NET_NS_FD, (uint32_t) ns_fd);
  mnl_attr_nest_end (nlh, pinfo);
  mnl_attr_nest_end (nlh, data);
  mnl_attr_nest_end (nlh, info);
  r = talk (nl, nlh, NULL, NULL);
  if (r < 0 || alias == NULL)
    return r;
  /* Creation ignores IFLA_IFALIAS; a second request, by name, sets it. A
   * failure leaves nothing: a link without its alias would never be
   * recognised as this allocation's. */
  nlh = link_msg (nl, RTM_SETLINK, 0, 0);
  mnl_attr_put_strz (nlh, IFLA_IFNAME, name);
  mnl_attr_put_strz (nlh, IFLA_IFALIAS, alias);
  r = talk (nl, nlh, NULL, NULL);
  if (r < 0)
    {
      char ext[sizeof nl->ext];

      memcpy (ext, nl->ext, sizeof ext);
      net__nl_link_del (nl, name);
      memcpy (nl->ext, ext, sizeof ext);
    }
  return r;
}

int
net__nl_addr_add (net_nl_t *nl, int ifindex, uint32_t addr, int prefix, int replace)
{
  struct nlmsghdr *nlh = mnl_nlmsg_put_header (nl->buf);
  struct ifaddrmsg *ifa;
  uint32_t a = htonl (addr);
  uint32_t mask = prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
  uint32_t bcast = htonl (addr | ~mask);

  nlh->nlmsg_type = RTM_NEWADDR;
  nlh->nlmsg_flags = NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL);
  ifa = mnl_nlmsg_put_extra_header (nlh, sizeof *ifa);
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = (unsigned char) prefix;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = (unsigned) ifindex;
  mnl_attr_put (nlh, IFA_LOCAL, sizeof a, &a);
  mnl_attr_put (nlh, IFA_ADDRESS, sizeof a, &a);
  mnl_attr_put (nlh, IFA_BROADCAST, sizeof bcast, &bcast);
  return talk (nl, nlh, NULL, NULL);
}

int
net__nl_route_default (net_nl_t *nl, int ifindex, uint32_t gw)
{
  struct nlmsghdr *nlh = mnl_nlmsg_put_header (nl->buf);
  struct rtmsg *rtm;
  uint32_t g = htonl (gw);

  nlh->nlmsg_type = RTM_NEWROUTE;
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  rtm = mnl_nlmsg_put_extra_header (nlh, sizeof *rtm);
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = 0;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = RT_SCOPE_UNIVERSE;
  rtm->rtm_type = RTN_UNICAST;
  mnl_attr_put (nlh, RTA_GATEWAY, sizeof g, &g);
  mnl_attr_put_u32 (nlh, RTA_OIF, (uint32_t) ifindex);
  return talk (nl, nlh, NULL, NULL);
}

int
net__nl_configure_inside (net_nl_t *nl, int ifindex, uint32_t addr, int prefix, uint32_t gw,
                          int *failed_step)
{
  char *p = nl->buf;
  struct nlmsghdr *nlh;
  struct ifaddrmsg *ifa;
  struct ifinfomsg *ifm;
  struct rtmsg *rtm;
  uint32_t a = htonl (addr), g = htonl (gw);
  uint32_t mask = prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
  uint32_t bcast = htonl (addr | ~mask);
  uint32_t first = nl->seq + 1;
  int step, acked = 0, err = 0;
  size_t len;

  /* Four requests in one send: the kernel handles them in order and acks
   * each; an error names its request by sequence number. */
  nlh = mnl_nlmsg_put_header (p);
  nlh->nlmsg_type = RTM_NEWADDR;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
  nlh->nlmsg_seq = ++nl->seq;
  ifa = mnl_nlmsg_put_extra_header (nlh, sizeof *ifa);
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = (unsigned char) prefix;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = (unsigned) ifindex;
  mnl_attr_put (nlh, IFA_LOCAL, sizeof a, &a);
  mnl_attr_put (nlh, IFA_ADDRESS, sizeof a, &a);
  mnl_attr_put (nlh, IFA_BROADCAST, sizeof bcast, &bcast);
  p += nlh->nlmsg_len;

  nlh = mnl_nlmsg_put_header (p);
  nlh->nlmsg_type = RTM_NEWLINK;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = ++nl->seq;
  ifm = mnl_nlmsg_put_extra_header (nlh, sizeof *ifm);
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = ifindex;
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;
  p += nlh->nlmsg_len;

  /* The loopback device is the first of every namespace: index 1. */
  nlh = mnl_nlmsg_put_header (p);
  nlh->nlmsg_type = RTM_NEWLINK;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = ++nl->seq;
  ifm = mnl_nlmsg_put_extra_header (nlh, sizeof *ifm);
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = 1;
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;
  p += nlh->nlmsg_len;

  nlh = mnl_nlmsg_put_header (p);
  nlh->nlmsg_type = RTM_NEWROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
  nlh->nlmsg_seq = ++nl->seq;
  rtm = mnl_nlmsg_put_extra_header (nlh, sizeof *rtm);
  rtm->rtm_family = AF_INET;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = RT_SCOPE_UNIVERSE;
  rtm->rtm_type = RTN_UNICAST;
  mnl_attr_put (nlh, RTA_GATEWAY, sizeof g, &g);
  mnl_attr_put_u32 (nlh, RTA_OIF, (uint32_t) ifindex);
  p += nlh->nlmsg_len;

  len = (size_t) (p - nl->buf);
  nl->ext[0] = '\0';
  if (mnl_socket_sendto (nl->sock, nl->buf, len) < 0)
    {
      *failed_step = 0;
      return -errno;
    }
  while (acked < 4)
    {
      ssize_t n = mnl_socket_recvfrom (nl->sock, nl->buf, sizeof nl->buf);
      const struct nlmsghdr *h;
      int left;

      if (n < 0)
        {
          *failed_step = acked;
          return -errno;
        }
      left = (int) n;
      for (h = (const struct nlmsghdr *) nl->buf; mnl_nlmsg_ok (h, left);
           h = mnl_nlmsg_next (h, &left))
        {
          if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq < first || h->nlmsg_seq > nl->seq)
            continue;
          step = (int) (h->nlmsg_seq - first);
          acked++;
          if (err == 0 && (err = parse_error (nl, h)) != 0)
            *failed_step = step;
        }
    }
  return err;
}

int
net__sysctl_write (const char *path, const char *value)
{
  size_t len = strlen (value);
  ssize_t w;
  int fd, r = 0;

  fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  w = write (fd, value, len);
  if (w < 0)
    r = -errno;
  else if ((size_t) w != len)
    r = -EIO;
  close (fd);
  return r;
}
