/*
 * <dmakit/linux.h>: the Linux kernel's memory and DMA vocabulary over dmakit,
 * for C11 (and C++) programs, so a driver fragment written for the kernel
 * compiles here with its #includes changed only.
 *
 * What it gives (docs/kernel-api.md maps each call and says where it differs):
 *   kmalloc, kzalloc, kcalloc, krealloc, kfree, ksize
 *   kmem_cache_create/alloc/zalloc/free/destroy
 *   alloc_pages, alloc_page, __free_pages, page_address, virt_to_page,
 *   __get_free_pages, free_pages, get_order
 *   vmalloc, vzalloc, vfree, kvmalloc, kvzalloc, kvfree
 *   dma_alloc_coherent, dma_free_coherent, dma_map_single, dma_unmap_single,
 *   dma_map_page, dma_unmap_page, dma_map_sg, dma_unmap_sg, dma_sync_*,
 *   dma_mapping_error, dma_set_mask(_and_coherent), dma_set_coherent_mask,
 *   DMA_BIT_MASK, dma_pool_create/alloc/zalloc/free/destroy, dev_to_node
 *   GFP_KERNEL, GFP_ATOMIC, GFP_NOWAIT, GFP_DMA32, __GFP_ZERO, __GFP_NOWARN ...
 *   u8..u64, s8..s64, __le16..__le64, dma_addr_t, gfp_t, struct page,
 *   struct device, struct scatterlist, readl/writel & co, barriers.
 *   Errors are the kernel's (NULL, DMA_MAPPING_ERROR, negative errno from
 *   <errno.h>), and each is also logged (stderr) with dmakit's message.
 *
 * What the kernel has and a process needs first: a `struct dmakit_kernel`,
 * the memory and devices this code runs on. dmakit_kernel_open() binds PCI
 * functions (vfio-pci) into one IOMMU domain and gives their `struct device`;
 * the kernel's allocation calls have no context argument, so they use the
 * calling thread's current kernel: dmakit_kernel_open() makes it current for
 * the thread that opens it, dmakit_kernel_enter() for any other thread.
 * Allocation on a thread with no current kernel fails (NULL) and says so.
 *
 * The allocation calls are macros (kmalloc(size, flags) passes __FILE__ and
 * __LINE__ on, for the leak report), as in kernels with allocation tagging.
 * In C++, include dmakit's C++ headers before this one, or define
 * DMAKIT_LINUX_NO_CALL_MACROS and call the dmakit_* functions: the macros
 * would rename members such as Kmalloc::kmalloc.
 */
#ifndef DMAKIT_LINUX_H
#define DMAKIT_LINUX_H

#include <errno.h>
#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- types ------------------------------------------------------------ */

/* The uapi's __u8..__u64 and __le16..__le64 (what VFIO's headers use too);
 * u64 is unsigned long long, as in the kernel, so "%llx" prints it. */
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s8 s8;
typedef __s16 s16;
typedef __s32 s32;
typedef __s64 s64;
typedef u64 dma_addr_t;
typedef u64 phys_addr_t;
typedef unsigned int gfp_t;

#define __iomem
#define __force
#define __user

struct dmakit_kernel;   /* the memory and devices kernel-shaped code runs on */
struct device;          /* one PCI function: its DMA API and its BARs */
struct page;            /* a block from alloc_pages: page_address() gives its memory */
struct kmem_cache;
struct dma_pool;

/* ---- allocation flags (include/linux/gfp_types.h) ---------------------- */

/* Bits, the same values as dmakit::mem::Gfp. */
#define ___GFP_GROW   0x1u  /* the pool may grow: mmap + IOMMU map, system calls */
#define __GFP_ZERO    0x2u
#define __GFP_NOWARN  0x4u
#define __GFP_DMA32   0x8u  /* device address below 4 GiB */

#define GFP_KERNEL    ___GFP_GROW
#define GFP_USER      ___GFP_GROW
#define GFP_NOIO      ___GFP_GROW
#define GFP_NOFS      ___GFP_GROW
#define GFP_ATOMIC    0u    /* only memory the pool already holds; never a system call */
#define GFP_NOWAIT    0u
#define GFP_DMA32     __GFP_DMA32
#define GFP_DMA       __GFP_DMA32  /* no 16 MiB zone: below 4 GiB, see docs/kernel-api.md */
#define __GFP_NORETRY 0u
#define __GFP_RETRY_MAYFAIL 0u
#define __GFP_COMP    0u

/* ---- the context -------------------------------------------------------- */

struct dmakit_kernel_options {
    int iommu_strict;      /* 0: pool memory mapped once; 1: every buffer on its own */
    int dma_debug;         /* CONFIG_DMA_API_DEBUG at run time */
    int numa_node;         /* pool memory's node; -1: the first device's node */
};

/* Binds `count` PCI functions ("0000:00:04.0", each on vfio-pci) into one
 * IOMMU domain with a hugepage pool, and makes the kernel current for the
 * calling thread. `options` may be NULL. NULL on failure, with the reason
 * logged (what to do: dmakit bind BDF, reserve hugepages, ...). */
struct dmakit_kernel *dmakit_kernel_open(const char *const *bdfs, int count,
                                         const struct dmakit_kernel_options *options);
/* Frees everything the code left (logged as leaks) and closes the devices. */
void dmakit_kernel_close(struct dmakit_kernel *kernel);
/* Makes `kernel` the calling thread's current one (NULL: none). */
void dmakit_kernel_enter(struct dmakit_kernel *kernel);
struct dmakit_kernel *dmakit_kernel_current(void);
/* The index-th function given to dmakit_kernel_open, or NULL. */
struct device *dmakit_kernel_device(struct dmakit_kernel *kernel, int index);

/* pci_iomap(pdev, bar, 0): BAR `bar` of `dev` mapped; its length in *length
 * (may be NULL). NULL when the BAR cannot be mapped (logged). */
void __iomem *dmakit_iomap_bar(struct device *dev, int bar, size_t *length);
/* The device's name (its PCI address), for messages. */
const char *dev_name(const struct device *dev);
/* The device's NUMA node from sysfs, -1 when the machine has none. */
int dev_to_node(struct device *dev);
#define NUMA_NO_NODE (-1)

/* ---- kmalloc (include/linux/slab.h) ------------------------------------- */

/* kmalloc(0) returns ZERO_SIZE_PTR, as the kernel's: not NULL, never usable. */
#define ZERO_SIZE_PTR ((void *)16)
#define ZERO_OR_NULL_PTR(x) ((unsigned long)(x) <= (unsigned long)ZERO_SIZE_PTR)

void *dmakit_kmalloc(size_t size, gfp_t flags, const char *file, int line);
void *dmakit_kcalloc(size_t n, size_t size, gfp_t flags, const char *file, int line);
void *dmakit_krealloc(const void *p, size_t size, gfp_t flags, const char *file, int line);
void kfree(const void *p);
size_t ksize(const void *p);

#ifndef DMAKIT_LINUX_NO_CALL_MACROS
#define kmalloc(size, flags) dmakit_kmalloc((size), (flags), __FILE__, __LINE__)
#define kzalloc(size, flags) dmakit_kmalloc((size), (flags) | __GFP_ZERO, __FILE__, __LINE__)
#define kcalloc(n, size, flags) dmakit_kcalloc((n), (size), (flags), __FILE__, __LINE__)
#define kmalloc_array(n, size, flags) dmakit_kcalloc((n), (size), (flags) & ~__GFP_ZERO, __FILE__, __LINE__)
#define krealloc(p, size, flags) dmakit_krealloc((p), (size), (flags), __FILE__, __LINE__)
#endif

#define SLAB_HWCACHE_ALIGN 0x2000u
#define SLAB_PANIC         0x40000u  /* accepted; a failure still returns NULL */

struct kmem_cache *dmakit_kmem_cache_create(const char *name, unsigned int size, unsigned int align,
                                            unsigned int flags, void (*ctor)(void *),
                                            const char *file, int line);
void *dmakit_kmem_cache_alloc(struct kmem_cache *cache, gfp_t flags, const char *file, int line);
void kmem_cache_free(struct kmem_cache *cache, void *object);
void kmem_cache_destroy(struct kmem_cache *cache);

#ifndef DMAKIT_LINUX_NO_CALL_MACROS
#define kmem_cache_create(name, size, align, flags, ctor) \
    dmakit_kmem_cache_create((name), (size), (align), (flags), (ctor), __FILE__, __LINE__)
#define kmem_cache_alloc(cache, flags) dmakit_kmem_cache_alloc((cache), (flags), __FILE__, __LINE__)
#define kmem_cache_zalloc(cache, flags) \
    dmakit_kmem_cache_alloc((cache), (flags) | __GFP_ZERO, __FILE__, __LINE__)
#endif

/* ---- pages (include/linux/gfp.h, mm.h) ---------------------------------- */

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))
#define MAX_ORDER 10  /* the kernel's largest buddy block: 4 MiB */

struct page *dmakit_alloc_pages(gfp_t flags, unsigned int order, const char *file, int line);
void __free_pages(struct page *page, unsigned int order);
void *page_address(const struct page *page);
/* The struct page of a block start alloc_pages gave (NULL for anything else). */
struct page *virt_to_page(const void *address);

#ifndef DMAKIT_LINUX_NO_CALL_MACROS
#define alloc_pages(flags, order) dmakit_alloc_pages((flags), (order), __FILE__, __LINE__)
#define alloc_page(flags) dmakit_alloc_pages((flags), 0, __FILE__, __LINE__)
#define __free_page(page) __free_pages((page), 0)
#define __get_free_pages(flags, order) \
    ((unsigned long)page_address(dmakit_alloc_pages((flags), (order), __FILE__, __LINE__)))
#define __get_free_page(flags) __get_free_pages((flags), 0)
#define get_zeroed_page(flags) __get_free_pages((flags) | __GFP_ZERO, 0)
#endif
void free_pages(unsigned long address, unsigned int order);
#define free_page(address) free_pages((address), 0)

/* The order of the smallest block of 2^order pages holding `size` bytes. */
static inline int get_order(unsigned long size)
{
    int order = 0;
    size = (size - 1) >> PAGE_SHIFT;
    while (size != 0) {
        ++order;
        size >>= 1;
    }
    return order;
}

/* ---- vmalloc (include/linux/vmalloc.h, mm.h) ---------------------------- */

void *dmakit_vmalloc(unsigned long size, gfp_t flags, const char *file, int line);
void vfree(const void *address);
void *dmakit_kvmalloc(size_t size, gfp_t flags, const char *file, int line);
void kvfree(const void *address);

#ifndef DMAKIT_LINUX_NO_CALL_MACROS
#define vmalloc(size) dmakit_vmalloc((size), GFP_KERNEL, __FILE__, __LINE__)
#define vzalloc(size) dmakit_vmalloc((size), GFP_KERNEL | __GFP_ZERO, __FILE__, __LINE__)
#define kvmalloc(size, flags) dmakit_kvmalloc((size), (flags), __FILE__, __LINE__)
#define kvzalloc(size, flags) dmakit_kvmalloc((size), (flags) | __GFP_ZERO, __FILE__, __LINE__)
#endif

/* ---- the DMA API (include/linux/dma-mapping.h) -------------------------- */

enum dma_data_direction {
    DMA_BIDIRECTIONAL = 0,
    DMA_TO_DEVICE = 1,
    DMA_FROM_DEVICE = 2,
    DMA_NONE = 3,
};

#define DMA_BIT_MASK(n) (((n) == 64) ? ~0ULL : ((1ULL << (n)) - 1))
#define DMA_MAPPING_ERROR (~(dma_addr_t)0)

static inline int dma_mapping_error(struct device *dev, dma_addr_t addr)
{
    (void)dev;
    return addr == DMA_MAPPING_ERROR ? -ENOMEM : 0;
}

int dma_set_mask(struct device *dev, u64 mask);
int dma_set_coherent_mask(struct device *dev, u64 mask);
int dma_set_mask_and_coherent(struct device *dev, u64 mask);

void *dmakit_dma_alloc_coherent(struct device *dev, size_t size, dma_addr_t *handle, gfp_t flags,
                                const char *file, int line);
void dma_free_coherent(struct device *dev, size_t size, void *cpu, dma_addr_t handle);
#ifndef DMAKIT_LINUX_NO_CALL_MACROS
#define dma_alloc_coherent(dev, size, handle, flags) \
    dmakit_dma_alloc_coherent((dev), (size), (handle), (flags), __FILE__, __LINE__)
#endif

dma_addr_t dma_map_single(struct device *dev, void *cpu, size_t size, enum dma_data_direction dir);
void dma_unmap_single(struct device *dev, dma_addr_t addr, size_t size, enum dma_data_direction dir);
dma_addr_t dma_map_page(struct device *dev, struct page *page, size_t offset, size_t size,
                        enum dma_data_direction dir);
void dma_unmap_page(struct device *dev, dma_addr_t addr, size_t size, enum dma_data_direction dir);
void dma_sync_single_for_cpu(struct device *dev, dma_addr_t addr, size_t size, enum dma_data_direction dir);
void dma_sync_single_for_device(struct device *dev, dma_addr_t addr, size_t size,
                                enum dma_data_direction dir);

/* Scatter lists (include/linux/scatterlist.h). The CPU side is a pointer
 * and length per entry (the kernel's page + offset); map_sg fills the device
 * side. Build with sg_init_table + sg_set_buf (or sg_init_one). */
struct scatterlist {
    void *dmakit_cpu;          /* sg_virt() */
    unsigned int offset;       /* within the page of dmakit_cpu, for kernel code that reads it */
    unsigned int length;
    dma_addr_t dma_address;    /* sg_dma_address() after dma_map_sg */
    unsigned int dma_length;   /* sg_dma_len() after dma_map_sg */
    bool end;                  /* sg_mark_end: the last entry */
};

static inline void sg_init_table(struct scatterlist *sg, unsigned int n)
{
    for (unsigned int i = 0; i < n; ++i) {
        sg[i].dmakit_cpu = NULL;
        sg[i].offset = 0;
        sg[i].length = 0;
        sg[i].dma_address = 0;
        sg[i].dma_length = 0;
        sg[i].end = false;
    }
    if (n != 0) sg[n - 1].end = true;
}
static inline void sg_set_buf(struct scatterlist *sg, const void *buf, unsigned int length)
{
    sg->dmakit_cpu = (void *)buf;
    sg->offset = (unsigned int)((uintptr_t)buf & (PAGE_SIZE - 1));
    sg->length = length;
}
static inline void sg_set_page(struct scatterlist *sg, struct page *page, unsigned int length,
                               unsigned int offset)
{
    sg_set_buf(sg, (char *)page_address(page) + offset, length);
}
static inline void sg_init_one(struct scatterlist *sg, const void *buf, unsigned int length)
{
    sg_init_table(sg, 1);
    sg_set_buf(sg, buf, length);
}
static inline void sg_mark_end(struct scatterlist *sg) { sg->end = true; }
static inline void *sg_virt(struct scatterlist *sg) { return sg->dmakit_cpu; }
static inline struct scatterlist *sg_next(struct scatterlist *sg) { return sg->end ? NULL : sg + 1; }
#define sg_dma_address(sg) ((sg)->dma_address)
#define sg_dma_len(sg) ((sg)->dma_length)
#define for_each_sg(sglist, sg, nr, i) \
    for ((i) = 0, (sg) = (sglist); (i) < (nr); (i)++, (sg) = sg_next(sg))

/* Returns the number of device segments (<= nents), 0 on failure (nothing
 * stays mapped). Unmap with the same nents that was passed in. */
int dma_map_sg(struct device *dev, struct scatterlist *sg, int nents, enum dma_data_direction dir);
void dma_unmap_sg(struct device *dev, struct scatterlist *sg, int nents, enum dma_data_direction dir);
void dma_sync_sg_for_cpu(struct device *dev, struct scatterlist *sg, int nents, enum dma_data_direction dir);
void dma_sync_sg_for_device(struct device *dev, struct scatterlist *sg, int nents,
                            enum dma_data_direction dir);

/* DMA pools (include/linux/dmapool.h). */
struct dma_pool *dma_pool_create(const char *name, struct device *dev, size_t size, size_t align,
                                 size_t boundary);
void *dma_pool_alloc(struct dma_pool *pool, gfp_t flags, dma_addr_t *handle);
void dma_pool_free(struct dma_pool *pool, void *cpu, dma_addr_t handle);
void dma_pool_destroy(struct dma_pool *pool);
static inline void *dma_pool_zalloc(struct dma_pool *pool, gfp_t flags, dma_addr_t *handle)
{
    return dma_pool_alloc(pool, flags | __GFP_ZERO, handle);
}

/* ---- MMIO and barriers (asm/io.h, asm/barrier.h) ------------------------ */

/* x86 keeps stores in order and loads in order, and an uncached access is
 * not reordered with other memory accesses: a compiler barrier is enough,
 * as the kernel's x86 readl/writel. Elsewhere, a full fence. */
#if defined(__x86_64__) || defined(__i386__)
#define dmakit_io_barrier() __asm__ __volatile__("" ::: "memory")
#define mb() __asm__ __volatile__("mfence" ::: "memory")
#define rmb() __asm__ __volatile__("lfence" ::: "memory")
#define wmb() __asm__ __volatile__("sfence" ::: "memory")
#else
#define dmakit_io_barrier() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define wmb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif
#define dma_rmb() dmakit_io_barrier()
#define dma_wmb() dmakit_io_barrier()
#define smp_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define smp_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define smp_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

static inline u8 readb(const volatile void __iomem *a) { u8 v = *(const volatile u8 *)a; dmakit_io_barrier(); return v; }
static inline u16 readw(const volatile void __iomem *a) { u16 v = *(const volatile u16 *)a; dmakit_io_barrier(); return v; }
static inline u32 readl(const volatile void __iomem *a) { u32 v = *(const volatile u32 *)a; dmakit_io_barrier(); return v; }
static inline u64 readq(const volatile void __iomem *a) { u64 v = *(const volatile u64 *)a; dmakit_io_barrier(); return v; }
static inline void writeb(u8 v, volatile void __iomem *a) { dmakit_io_barrier(); *(volatile u8 *)a = v; }
static inline void writew(u16 v, volatile void __iomem *a) { dmakit_io_barrier(); *(volatile u16 *)a = v; }
static inline void writel(u32 v, volatile void __iomem *a) { dmakit_io_barrier(); *(volatile u32 *)a = v; }
static inline void writeq(u64 v, volatile void __iomem *a) { dmakit_io_barrier(); *(volatile u64 *)a = v; }
#define ioread32(a) readl(a)
#define iowrite32(v, a) writel((v), (a))

/* ---- small helpers driver code leans on --------------------------------- */

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define cpu_to_le16(x) ((__le16)(x))
#define cpu_to_le32(x) ((__le32)(x))
#define cpu_to_le64(x) ((__le64)(x))
#define le16_to_cpu(x) ((u16)(x))
#define le32_to_cpu(x) ((u32)(x))
#define le64_to_cpu(x) ((u64)(x))
#else
#define cpu_to_le16(x) ((__le16)__builtin_bswap16(x))
#define cpu_to_le32(x) ((__le32)__builtin_bswap32(x))
#define cpu_to_le64(x) ((__le64)__builtin_bswap64(x))
#define le16_to_cpu(x) ((u16)__builtin_bswap16(x))
#define le32_to_cpu(x) ((u32)__builtin_bswap32(x))
#define le64_to_cpu(x) ((u64)__builtin_bswap64(x))
#endif
#define lower_32_bits(n) ((u32)((n) & 0xffffffffu))
#define upper_32_bits(n) ((u32)(((n) >> 16) >> 16))
#define BIT(n) (1UL << (n))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define IS_ERR_OR_NULL(p) ((p) == NULL)

/* Messages go to stderr through dmakit's logger, never stdout. */
void dmakit_printk(int level, const struct device *dev, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
#define pr_err(...) dmakit_printk(3, NULL, __VA_ARGS__)
#define pr_warn(...) dmakit_printk(4, NULL, __VA_ARGS__)
#define pr_info(...) dmakit_printk(6, NULL, __VA_ARGS__)
#define pr_debug(...) dmakit_printk(7, NULL, __VA_ARGS__)
#define dev_err(dev, ...) dmakit_printk(3, (dev), __VA_ARGS__)
#define dev_warn(dev, ...) dmakit_printk(4, (dev), __VA_ARGS__)
#define dev_info(dev, ...) dmakit_printk(6, (dev), __VA_ARGS__)
#define dev_dbg(dev, ...) dmakit_printk(7, (dev), __VA_ARGS__)

/* Sleeps (the kernel's may sleep too; in a process they always may). */
void msleep(unsigned int ms);
void udelay(unsigned long us);
#define usleep_range(min, max) udelay(min)

#ifdef __cplusplus
}
#endif

#endif /* DMAKIT_LINUX_H */
