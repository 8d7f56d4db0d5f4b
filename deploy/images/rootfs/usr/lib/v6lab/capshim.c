/*
 * v6lab capshim: LD_PRELOAD library for FRR in containers without CAP_SYS_ADMIN.
 *
 * FRR's daemons (zebra, ospf6d, bgpd, ...) put a fixed capability set into their permitted set at
 * start-up (zebra: NET_ADMIN, NET_RAW, SYS_ADMIN) and exit with "privs_init: initial cap_set_proc
 * failed: Operation not permitted" when one of them is outside the bounding set. v6lab nodes get
 * NET_ADMIN + NET_RAW only (CAP_SYS_ADMIN would allow mount and, on cgroup v1 hosts without an LSM,
 * the well-known release_agent escape). SYS_ADMIN is only used by FRR for netns-based VRFs.
 *
 * This wrapper of libcap's cap_set_proc() clears every capability that is not in the bounding set
 * before applying the set, so the daemons start and keep what the container allows.
 * Used through /etc/frr/daemons:  all_wrap="env LD_PRELOAD=/usr/lib/v6lab/libcapshim.so"
 * Built by /usr/lib/v6lab/image-finalize:
 *   gcc -shared -fPIC -O2 -o /usr/lib/v6lab/libcapshim.so capshim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/prctl.h>

typedef void *cap_t;		/* libcap's opaque handle; no libcap headers needed */
typedef int cap_value_t;
extern int cap_set_flag(cap_t, int /* cap_flag_t */, int, const cap_value_t *, int /* cap_flag_value_t */);

int cap_set_proc(cap_t caps)
{
	static int (*real_cap_set_proc)(cap_t);

	if (!real_cap_set_proc)
		real_cap_set_proc = (int (*)(cap_t))dlsym(RTLD_NEXT, "cap_set_proc");
	if (!real_cap_set_proc)
		return -1;
	for (cap_value_t cap = 0; cap < 64; cap++) {
		int in_bounding_set = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (in_bounding_set < 0)
			break;	/* past the kernel's last capability */
		if (in_bounding_set == 0)
			for (int flag = 0; flag < 3; flag++)	/* effective, permitted, inheritable */
				cap_set_flag(caps, flag, 1, &cap, 0 /* CAP_CLEAR */);
	}
	return real_cap_set_proc(caps);
}
