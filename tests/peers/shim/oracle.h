/*
 * virtio-oracle native peer shim: a flat C API over Linux's split-ring driver
 * (virtio_ring.c) and device (vringh.c, user flavour), written for this project.
 *
 * Every ring lives in one caller-provided region `base[0, size)`. Guest addresses
 * are offsets into that region: a descriptor's `addr` of G means the byte at
 * base + G. The driver side writes guest addresses into descriptors; the device
 * side translates them back with a range callback that maps [0, size) to base.
 *
 * Return conventions follow Linux: negative errno on failure.
 */
#ifndef VIRTIO_ORACLE_SHIM_H
#define VIRTIO_ORACLE_SHIM_H

#include <stddef.h>
#include <stdint.h>

struct oracle_drv;
struct oracle_dev;

/* --- driver side (virtio_ring.c) --- */
struct oracle_drv *oracle_drv_new(void *base, size_t size, unsigned num, uint64_t desc,
				  uint64_t avail, uint64_t used, uint64_t features,
				  unsigned start);
void oracle_drv_free(struct oracle_drv *d);
/* Segments: out first, then in. `table` is a guest address with room for
 * `nout + nin` descriptors, lent for an indirect table (UINT64_MAX: none).
 * Returns the head, or -errno; *table_used says whether the table was taken. */
int oracle_drv_add(struct oracle_drv *d, const uint64_t *addrs, const uint32_t *lens,
		   unsigned nout, unsigned nin, uint64_t token, uint64_t table,
		   int *table_used);
int oracle_drv_kick_prepare(struct oracle_drv *d);
uint64_t oracle_drv_get_buf(struct oracle_drv *d, uint32_t *len);
void oracle_drv_disable_cb(struct oracle_drv *d);
int oracle_drv_enable_cb(struct oracle_drv *d);
int oracle_drv_enable_cb_delayed(struct oracle_drv *d);
uint64_t oracle_drv_detach_unused(struct oracle_drv *d);
int oracle_drv_more_used(struct oracle_drv *d);
uint64_t oracle_drv_token_of(struct oracle_drv *d, unsigned head);
unsigned oracle_drv_last_used(struct oracle_drv *d);
int oracle_drv_no_interrupt(struct oracle_drv *d);
unsigned oracle_drv_num_free(struct oracle_drv *d);
unsigned oracle_drv_free_head(struct oracle_drv *d);
int oracle_drv_broken(struct oracle_drv *d);

/* --- packed driver (virtio_ring.c): Linux allocates the ring itself, here in
 * whole pages of [region, region_end), and the queue starts at offset `start` with
 * both wrap counters 1. The oracle_drv_* calls above that take no index work on it
 * too (add returns the Buffer ID); the ones below read its packed state. Positions
 * come back as Linux keeps them: offset | wrap counter << 15. --- */
struct oracle_drv *oracle_pdrv_new(void *base, size_t size, uint64_t region,
				   uint64_t region_end, unsigned num, uint64_t features,
				   unsigned start);
void oracle_pdrv_rings(struct oracle_drv *d, uint64_t *desc, uint64_t *driver,
		       uint64_t *device);
uint64_t oracle_pdrv_token_of(struct oracle_drv *d, unsigned id);
unsigned oracle_pdrv_descs_of(struct oracle_drv *d, unsigned id);
unsigned oracle_pdrv_last_id(struct oracle_drv *d, unsigned id);
unsigned oracle_pdrv_next_id(struct oracle_drv *d, unsigned id);
unsigned oracle_pdrv_last_used(struct oracle_drv *d);
unsigned oracle_pdrv_next_avail(struct oracle_drv *d);
unsigned oracle_pdrv_event_flags(struct oracle_drv *d);
int oracle_pdrv_more_used(struct oracle_drv *d);

/* --- device side (vringh.c, user accessors) --- */
struct oracle_dev *oracle_dev_new(void *base, size_t size, unsigned num, uint64_t desc,
				  uint64_t avail, uint64_t used, uint64_t features,
				  unsigned start);
void oracle_dev_free(struct oracle_dev *d);
/* 1: a chain (readable then writable segments, guest addresses), 0: none,
 * -errno: refused (*head is the head, or num for a ring-level fault).
 * -E2BIG: more than `cap` segments (a shim limit, not vringh's). */
int oracle_dev_getdesc(struct oracle_dev *d, uint64_t *addrs, uint32_t *lens, unsigned cap,
		       unsigned *nread, unsigned *nwrite, uint16_t *head);
int oracle_dev_complete(struct oracle_dev *d, uint16_t head, uint32_t len);
int oracle_dev_need_notify(struct oracle_dev *d);
int oracle_dev_notify_enable(struct oracle_dev *d);
void oracle_dev_notify_disable(struct oracle_dev *d);
unsigned oracle_dev_last_avail(struct oracle_dev *d);
unsigned oracle_dev_last_used(struct oracle_dev *d);

/* --- both in C: n round trips of one buffer (readable `len` at addr, writable
 * `len` after it): add, getdesc, complete, get_buf. 0, or -errno at the first
 * failure. For measuring the ring code without Python in between. --- */
int oracle_pair_round_trips(struct oracle_drv *d, struct oracle_dev *v, uint64_t addr,
			    uint32_t len, unsigned n);

#endif
