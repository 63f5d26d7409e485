/*
 * Driver half of the native peer: Linux's virtio_ring.c, compiled into this file so
 * the shim can place the ring at chosen addresses and start its indices anywhere.
 * Written for virtio-oracle; it only calls virtio_ring.c, it copies none of it.
 *
 * Address translation: data buffers enter scatterlists as their guest address
 * (the driver never dereferences them, it only writes the number into descriptors),
 * and the indirect tables it does write live in the shared region, so
 * virt_to_phys subtracts the region's base.
 */
#include <linux/kernel.h>
#include <stdint.h>
#include <string.h>

static unsigned long oracle_phys_offset;
static void *oracle_lent_table;
static size_t oracle_lent_bytes;
static int oracle_adding, oracle_lent_taken;

/* Linux kmallocs an indirect table while adding; hand it the lent table or fail. */
static void *oracle_kmalloc_array(size_t n, size_t s)
{
	if (!oracle_adding)
		return calloc(n, s);
	if (!oracle_lent_table || oracle_lent_taken || n * s > oracle_lent_bytes)
		return NULL;
	oracle_lent_taken = 1;
	return oracle_lent_table;
}

/* The packed ring allocates its three parts itself (alloc_pages_exact without the DMA
 * API). While a packed queue is being created, hand out whole pages of the region
 * Python chose, in order, zeroed (6.1 asks for __GFP_ZERO, which tools/virtio defines
 * as 0); outside that window, or when the region is full, behave as tools/virtio. */
static unsigned char *oracle_pool_base, *oracle_pool_next, *oracle_pool_end;

static void *oracle_alloc_pages_exact(size_t s)
{
	size_t page = getpagesize();
	size_t at;
	void *p;

	if (!oracle_pool_next)
		return malloc(s);
	at = (size_t)(oracle_pool_next - oracle_pool_base);
	at = (at + page - 1) / page * page;
	if (s > (size_t)(oracle_pool_end - oracle_pool_base) - at)
		return NULL;
	p = oracle_pool_base + at;
	memset(p, 0, s);
	oracle_pool_next = oracle_pool_base + at + s;
	return p;
}

#undef virt_to_phys
#define virt_to_phys(p) ((unsigned long)(p) - oracle_phys_offset)
#define kmalloc_array(n, s, gfp) oracle_kmalloc_array((n), (s))
#define alloc_pages_exact(s, gfp) oracle_alloc_pages_exact(s)

#include "virtio_ring.c"
#include "oracle.h"

#define ORACLE_ALIGN 4	/* any power of two: the computed parts are replaced at once */

struct oracle_drv {
	struct virtio_device vdev;
	struct virtqueue *vq;
	unsigned char *base;
	size_t size;
};

static bool oracle_notify(struct virtqueue *vq)
{
	return true;
}

static void oracle_callback(struct virtqueue *vq)
{
}

/* Make `d`'s region the one address translation and kfree act on. */
static struct vring_virtqueue *enter(struct oracle_drv *d)
{
	oracle_phys_offset = (unsigned long)d->base;
	__kfree_ignore_start = d->base;
	__kfree_ignore_end = d->base + d->size;
	return to_vvq(d->vq);
}

struct oracle_drv *oracle_drv_new(void *base, size_t size, unsigned num, uint64_t desc,
				  uint64_t avail, uint64_t used, uint64_t features,
				  unsigned start)
{
	struct oracle_drv *d = calloc(1, sizeof(*d));
	struct vring_virtqueue *vq;

	if (!d)
		return NULL;
	d->base = base;
	d->size = size;
	d->vdev.features = features;
	INIT_LIST_HEAD(&d->vdev.vqs);
	spin_lock_init(&d->vdev.vqs_list_lock);
	memset(d->base + desc, 0, 16 * (size_t)num);
	memset(d->base + avail, 0, 6 + 2 * (size_t)num);
	memset(d->base + used, 0, 6 + 8 * (size_t)num);
	oracle_phys_offset = (unsigned long)base;
	/* The public constructor lays the legacy layout from `desc` (it writes nothing to
	 * the ring when given a callback); the parts are then pointed where they are. */
	d->vq = vring_new_virtqueue(0, num, ORACLE_ALIGN, &d->vdev, true, false,
				    d->base + desc, oracle_notify, oracle_callback, "oracle");
	if (!d->vq) {
		free(d);
		return NULL;
	}
	vq = to_vvq(d->vq);
	vq->split.vring.avail = (void *)(d->base + avail);
	vq->split.vring.used = (void *)(d->base + used);
	vq->split.avail_idx_shadow = start;
	vq->last_used_idx = start;
	vq->split.vring.avail->idx = cpu_to_virtio16(&d->vdev, start);
	vq->split.vring.used->idx = cpu_to_virtio16(&d->vdev, start);
	vring_used_event(&vq->split.vring) = cpu_to_virtio16(&d->vdev, start);
	vring_avail_event(&vq->split.vring) = cpu_to_virtio16(&d->vdev, start);
	return d;
}

void oracle_drv_free(struct oracle_drv *d)
{
	enter(d);
	vring_del_virtqueue(d->vq);
	free(d);
}

int oracle_drv_add(struct oracle_drv *d, const uint64_t *addrs, const uint32_t *lens,
		   unsigned nout, unsigned nin, uint64_t token, uint64_t table,
		   int *table_used)
{
	unsigned total = nout + nin, i;
	struct scatterlist *sg = calloc(total ? total : 1, sizeof(*sg));
	struct scatterlist **sgs = calloc(total ? total : 1, sizeof(*sgs));
	unsigned head;
	int err;

	if (!sg || !sgs) {
		free(sg);
		free(sgs);
		return -ENOMEM;
	}
	enter(d);
	for (i = 0; i < total; i++) {
		sg_init_one(&sg[i], (void *)(uintptr_t)addrs[i], lens[i]);
		sgs[i] = &sg[i];
	}
	head = to_vvq(d->vq)->free_head;
	oracle_lent_table = table == UINT64_MAX ? NULL : d->base + table;
	oracle_lent_bytes = 16 * (size_t)total;
	oracle_lent_taken = 0;
	oracle_adding = 1;
	err = virtqueue_add_sgs(d->vq, sgs, nout, nin, (void *)(uintptr_t)token, GFP_ATOMIC);
	oracle_adding = 0;
	*table_used = oracle_lent_taken;
	free(sg);
	free(sgs);
	return err ? err : (int)head;
}

int oracle_drv_kick_prepare(struct oracle_drv *d)
{
	enter(d);
	return virtqueue_kick_prepare(d->vq);
}

uint64_t oracle_drv_get_buf(struct oracle_drv *d, uint32_t *len)
{
	unsigned int l = 0;
	void *token;

	enter(d);
	token = virtqueue_get_buf(d->vq, &l);
	*len = l;
	return (uint64_t)(uintptr_t)token;
}

void oracle_drv_disable_cb(struct oracle_drv *d)
{
	enter(d);
	virtqueue_disable_cb(d->vq);
}

int oracle_drv_enable_cb(struct oracle_drv *d)
{
	enter(d);
	return virtqueue_enable_cb(d->vq);
}

int oracle_drv_enable_cb_delayed(struct oracle_drv *d)
{
	enter(d);
	return virtqueue_enable_cb_delayed(d->vq);
}

uint64_t oracle_drv_detach_unused(struct oracle_drv *d)
{
	enter(d);
	return (uint64_t)(uintptr_t)virtqueue_detach_unused_buf(d->vq);
}

int oracle_drv_more_used(struct oracle_drv *d)
{
	enter(d);
	return more_used_split(to_vvq(d->vq));
}

uint64_t oracle_drv_token_of(struct oracle_drv *d, unsigned head)
{
	struct vring_virtqueue *vq = enter(d);

	if (head >= vq->split.vring.num)
		return 0;
	return (uint64_t)(uintptr_t)vq->split.desc_state[head].data;
}

unsigned oracle_drv_last_used(struct oracle_drv *d)
{
	return enter(d)->last_used_idx;
}

int oracle_drv_no_interrupt(struct oracle_drv *d)
{
	return !!(enter(d)->split.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT);
}

unsigned oracle_drv_num_free(struct oracle_drv *d)
{
	return d->vq->num_free;
}

unsigned oracle_drv_free_head(struct oracle_drv *d)
{
	return enter(d)->free_head;
}

int oracle_drv_broken(struct oracle_drv *d)
{
	return enter(d)->broken;
}

/* --- the packed ring (created by Linux itself, inside the region) --- */

struct oracle_drv *oracle_pdrv_new(void *base, size_t size, uint64_t region,
				   uint64_t region_end, unsigned num, uint64_t features,
				   unsigned start)
{
	struct oracle_drv *d;
	struct vring_virtqueue *vq;
	unsigned i;

	if (region > region_end || region_end > size || !num || start >= num)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->base = base;
	d->size = size;
	d->vdev.features = features | (1ULL << VIRTIO_F_RING_PACKED);
	INIT_LIST_HEAD(&d->vdev.vqs);
	spin_lock_init(&d->vdev.vqs_list_lock);
	oracle_phys_offset = (unsigned long)base;
	__kfree_ignore_start = d->base;
	__kfree_ignore_end = d->base + d->size;
	oracle_pool_base = d->base;
	oracle_pool_next = d->base + region;
	oracle_pool_end = d->base + region_end;
	d->vq = vring_create_virtqueue(0, num, ORACLE_ALIGN, &d->vdev, true, false, false,
				       oracle_notify, oracle_callback, "oracle-packed");
	oracle_pool_next = NULL;
	if (!d->vq) {
		free(d);
		return NULL;
	}
	vq = to_vvq(d->vq);
	if (!vq->packed_ring) {
		vring_del_virtqueue(d->vq);
		free(d);
		return NULL;
	}
	/* A queue restored at `start` (wrap counters 1), as the reference's initial_offset.
	 * Linux only ever starts at 0 and tells a used descriptor by its flags alone, so a
	 * zeroed slot before `start` would look used once its counter is 0. Those slots get
	 * the flags a list made available and used in the first lap leaves (AVAIL and USED
	 * both 1), as a queue that ran up to `start` would hold. */
	vq->packed.next_avail_idx = start;
	vq->last_used_idx = start | (1 << VRING_PACKED_EVENT_F_WRAP_CTR);
	for (i = 0; i < start; i++)
		vq->packed.vring.desc[i].flags = cpu_to_le16(1 << VRING_PACKED_DESC_F_AVAIL |
							     1 << VRING_PACKED_DESC_F_USED);
	return d;
}

/* Guest addresses of the descriptor ring and the driver and device event areas. */
void oracle_pdrv_rings(struct oracle_drv *d, uint64_t *desc, uint64_t *driver,
		       uint64_t *device)
{
	struct vring_virtqueue *vq = enter(d);

	*desc = (uint64_t)((unsigned char *)vq->packed.vring.desc - d->base);
	*driver = (uint64_t)((unsigned char *)vq->packed.vring.driver - d->base);
	*device = (uint64_t)((unsigned char *)vq->packed.vring.device - d->base);
}

uint64_t oracle_pdrv_token_of(struct oracle_drv *d, unsigned id)
{
	struct vring_virtqueue *vq = enter(d);

	if (id >= vq->packed.vring.num)
		return 0;
	return (uint64_t)(uintptr_t)vq->packed.desc_state[id].data;
}

unsigned oracle_pdrv_descs_of(struct oracle_drv *d, unsigned id)
{
	struct vring_virtqueue *vq = enter(d);

	if (id >= vq->packed.vring.num || !vq->packed.desc_state[id].data)
		return 0;
	return vq->packed.desc_state[id].num;
}

/* The last id of the id chain a list took (Linux takes one id per ring descriptor). */
unsigned oracle_pdrv_last_id(struct oracle_drv *d, unsigned id)
{
	struct vring_virtqueue *vq = enter(d);

	if (id >= vq->packed.vring.num)
		return vq->packed.vring.num;
	return vq->packed.desc_state[id].last;
}

unsigned oracle_pdrv_next_id(struct oracle_drv *d, unsigned id)
{
	struct vring_virtqueue *vq = enter(d);

	if (id >= vq->packed.vring.num)
		return vq->packed.vring.num;
	return vq->packed.desc_extra[id].next;
}

unsigned oracle_pdrv_last_used(struct oracle_drv *d)
{
	return enter(d)->last_used_idx;
}

unsigned oracle_pdrv_next_avail(struct oracle_drv *d)
{
	struct vring_virtqueue *vq = enter(d);

	return vq->packed.next_avail_idx |
	       vq->packed.avail_wrap_counter << VRING_PACKED_EVENT_F_WRAP_CTR;
}

unsigned oracle_pdrv_event_flags(struct oracle_drv *d)
{
	return enter(d)->packed.event_flags_shadow;
}

int oracle_pdrv_more_used(struct oracle_drv *d)
{
	return more_used_packed(enter(d));
}
