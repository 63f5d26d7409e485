/*
 * Device half of the native peer: Linux's vringh.c through its userspace ("user")
 * accessors. Written for virtio-oracle; it only calls vringh's exported API.
 *
 * Address translation: vringh_init_user gets real pointers to the three ring parts;
 * descriptor addresses are guest addresses, which oracle_range maps to the region
 * (one range [0, size) at offset base). The tools/virtio uaccess checks use the
 * __user_addr_min/max bounds, set to the region before every call.
 */
#include <linux/kernel.h>
#include <linux/uio.h>
#include <linux/vringh.h>
#include <linux/virtio_config.h>
#include <stdint.h>
#include <string.h>

#include "oracle.h"

void *__user_addr_min, *__user_addr_max;
void *__kmalloc_fake, *__kfree_ignore_start, *__kfree_ignore_end;

#define ORACLE_IOV 16

struct oracle_dev {
	struct vringh vrh;
	unsigned char *base;
	size_t size;
};

static struct vringh *enter(struct oracle_dev *d)
{
	__user_addr_min = d->base;
	__user_addr_max = d->base + d->size;
	return &d->vrh;
}

/* Every guest address below `size` lies in the one range; nothing else does. */
static bool oracle_range(struct vringh *vrh, u64 addr, struct vringh_range *r)
{
	struct oracle_dev *d = container_of(vrh, struct oracle_dev, vrh);

	if (addr >= d->size)
		return false;
	r->start = 0;
	r->end_incl = d->size - 1;
	r->offset = (u64)(uintptr_t)d->base;
	return true;
}

struct oracle_dev *oracle_dev_new(void *base, size_t size, unsigned num, uint64_t desc,
				  uint64_t avail, uint64_t used, uint64_t features,
				  unsigned start)
{
	struct oracle_dev *d = calloc(1, sizeof(*d));
	unsigned char *b = base;

	if (!d)
		return NULL;
	d->base = base;
	d->size = size;
	if (vringh_init_user(&d->vrh, features, num, true, (void *)(b + desc),
			     (void *)(b + avail), (void *)(b + used))) {
		free(d);
		return NULL;
	}
	d->vrh.last_avail_idx = start;
	d->vrh.last_used_idx = start;
	return d;
}

void oracle_dev_free(struct oracle_dev *d)
{
	free(d);
}

static int copy_out(struct oracle_dev *d, struct vringh_iov *iov, uint64_t *addrs,
		    uint32_t *lens, unsigned cap, unsigned *n)
{
	unsigned i;

	if (iov->used > cap)
		return -E2BIG;
	for (i = 0; i < iov->used; i++) {
		addrs[i] = (uint64_t)((unsigned char *)iov->iov[i].iov_base - d->base);
		lens[i] = iov->iov[i].iov_len;
	}
	*n = iov->used;
	return 0;
}

int oracle_dev_getdesc(struct oracle_dev *d, uint64_t *addrs, uint32_t *lens, unsigned cap,
		       unsigned *nread, unsigned *nwrite, uint16_t *head)
{
	struct iovec rstack[ORACLE_IOV], wstack[ORACLE_IOV];
	struct vringh_iov riov, wiov;
	int err;

	*nread = *nwrite = 0;
	vringh_iov_init(&riov, rstack, ORACLE_IOV);
	vringh_iov_init(&wiov, wstack, ORACLE_IOV);
	err = vringh_getdesc_user(enter(d), &riov, &wiov, oracle_range, head);
	if (err == 1) {
		int e = copy_out(d, &riov, addrs, lens, cap, nread);

		if (!e)
			e = copy_out(d, &wiov, addrs + *nread, lens + *nread, cap - *nread, nwrite);
		if (e)
			err = e;
	}
	vringh_iov_cleanup(&riov);
	vringh_iov_cleanup(&wiov);
	return err;
}

int oracle_dev_complete(struct oracle_dev *d, uint16_t head, uint32_t len)
{
	return vringh_complete_user(enter(d), head, len);
}

int oracle_dev_need_notify(struct oracle_dev *d)
{
	return vringh_need_notify_user(enter(d));
}

int oracle_dev_notify_enable(struct oracle_dev *d)
{
	return vringh_notify_enable_user(enter(d));
}

void oracle_dev_notify_disable(struct oracle_dev *d)
{
	vringh_notify_disable_user(enter(d));
}

unsigned oracle_dev_last_avail(struct oracle_dev *d)
{
	return d->vrh.last_avail_idx;
}

unsigned oracle_dev_last_used(struct oracle_dev *d)
{
	return (u16)(d->vrh.last_used_idx + d->vrh.completed);
}

int oracle_pair_round_trips(struct oracle_drv *d, struct oracle_dev *v, uint64_t addr,
			    uint32_t len, unsigned n)
{
	uint64_t addrs[2] = { addr, addr + len }, got[ORACLE_IOV];
	uint32_t lens[2] = { len, len }, glens[ORACLE_IOV], written;
	unsigned i, nread, nwrite;
	uint16_t head;
	int used, err;

	for (i = 0; i < n; i++) {
		err = oracle_drv_add(d, addrs, lens, 1, 1, (uint64_t)i + 1, UINT64_MAX, &used);
		if (err < 0)
			return err;
		err = oracle_dev_getdesc(v, got, glens, ORACLE_IOV, &nread, &nwrite, &head);
		if (err != 1)
			return err < 0 ? err : -ENODATA;
		err = oracle_dev_complete(v, head, len);
		if (err)
			return err;
		if (oracle_drv_get_buf(d, &written) != (uint64_t)i + 1 || written != len)
			return -EPROTO;
	}
	return 0;
}
