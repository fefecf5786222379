/*
 * Kernel driver patterns written against <dmakit/linux.h> only, compiled as
 * C11: what a kernel developer would write, unchanged but for the includes.
 * Each case returns NULL on success or a message naming the failed check;
 * linux_c_test.cpp runs them over a test IOMMU and plays the device.
 */
#include <dmakit/linux.h>

#include <stdio.h>
#include <string.h>

#include "kernel_patterns.h"

#define EXPECT(cond)                                                              \
    do {                                                                          \
        if (!(cond)) return "line " DMAKIT_STR(__LINE__) ": " #cond;              \
    } while (0)
#define DMAKIT_STR2(x) #x
#define DMAKIT_STR(x) DMAKIT_STR2(x)

const char *case_kmalloc_family(void)
{
    char *p = kmalloc(100, GFP_KERNEL);
    EXPECT(p != NULL);
    EXPECT(ksize(p) >= 100);
    memset(p, 0xab, 100);
    char *q = krealloc(p, 5000, GFP_KERNEL);
    EXPECT(q != NULL);
    EXPECT(ksize(q) >= 5000);
    for (int i = 0; i < 100; ++i) EXPECT((unsigned char)q[i] == 0xab);
    kfree(q);

    u32 *z = kzalloc(64 * sizeof(u32), GFP_KERNEL);
    EXPECT(z != NULL);
    for (int i = 0; i < 64; ++i) EXPECT(z[i] == 0);
    kfree(z);

    u64 *arr = kcalloc(16, sizeof(u64), GFP_KERNEL);
    EXPECT(arr != NULL);
    for (int i = 0; i < 16; ++i) EXPECT(arr[i] == 0);
    kfree(arr);
    /* n * size overflows: NULL, nothing allocated */
    EXPECT(kcalloc((size_t)1 << 62, 8, GFP_KERNEL | __GFP_NOWARN) == NULL);

    void *none = kmalloc(0, GFP_KERNEL);
    EXPECT(none == ZERO_SIZE_PTR && ZERO_OR_NULL_PTR(none));
    kfree(none);
    kfree(NULL);
    EXPECT(ksize(NULL) == 0);
    return NULL;
}

struct widget {
    u32 magic;
    u32 uses;
    u8 payload[184];
};

static void widget_ctor(void *object)
{
    struct widget *w = object;
    w->magic = 0x5a5a1234;
    w->uses = 0;
}

const char *case_kmem_cache(void)
{
    struct kmem_cache *cache = kmem_cache_create("widget", sizeof(struct widget), 0, SLAB_HWCACHE_ALIGN, widget_ctor);
    EXPECT(cache != NULL);
    struct widget *w[50];
    for (int i = 0; i < 50; ++i) {
        w[i] = kmem_cache_alloc(cache, GFP_KERNEL);
        EXPECT(w[i] != NULL);
        EXPECT(((uintptr_t)w[i] & 63) == 0); /* SLAB_HWCACHE_ALIGN */
        EXPECT(w[i]->magic == 0x5a5a1234);  /* constructed */
        w[i]->uses++;
    }
    for (int i = 0; i < 50; ++i) kmem_cache_free(cache, w[i]);
    struct widget *zeroed = kmem_cache_zalloc(cache, GFP_KERNEL);
    EXPECT(zeroed != NULL && zeroed->magic == 0);
    kmem_cache_free(cache, zeroed);
    kmem_cache_destroy(cache);
    EXPECT(kmem_cache_create("too-big", 64u << 20, 0, 0, NULL) == NULL);
    return NULL;
}

const char *case_pages(void)
{
    EXPECT(get_order(1) == 0 && get_order(4096) == 0 && get_order(4097) == 1);
    EXPECT(get_order(1 << 20) == 8);
    struct page *page = alloc_pages(GFP_KERNEL | __GFP_ZERO, 2);
    EXPECT(page != NULL);
    u8 *mem = page_address(page);
    EXPECT(((uintptr_t)mem & (4 * PAGE_SIZE - 1)) == 0);
    for (size_t i = 0; i < 4 * PAGE_SIZE; ++i) EXPECT(mem[i] == 0);
    EXPECT(virt_to_page(mem) == page);
    __free_pages(page, 2);

    unsigned long addr = __get_free_page(GFP_KERNEL);
    EXPECT(addr != 0 && (addr & (PAGE_SIZE - 1)) == 0);
    free_page(addr);
    return NULL;
}

const char *case_vmalloc(void)
{
    u8 *v = vzalloc(3 << 20);
    EXPECT(v != NULL);
    for (size_t i = 0; i < (3u << 20); i += 4096) EXPECT(v[i] == 0);
    v[(3 << 20) - 1] = 7;
    vfree(v);

    void *small = kvmalloc(200, GFP_KERNEL);
    EXPECT(small != NULL);
    kvfree(small);
    void *big = kvzalloc(256 << 20, GFP_KERNEL); /* beyond the test pool: vmalloc */
    EXPECT(big != NULL);
    kvfree(big);
    EXPECT(vmalloc(0) == NULL);
    return NULL;
}

const char *case_dma_coherent_ring(struct device *dev, struct ring_seen *seen)
{
    EXPECT(dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64)) == 0);
    /* A descriptor ring, as a NIC driver's probe sets one up. */
    dma_addr_t ring_dma;
    __le64 *ring = dma_alloc_coherent(dev, 256 * 16, &ring_dma, GFP_KERNEL);
    EXPECT(ring != NULL);
    EXPECT(ring_dma != 0 && ring_dma != DMA_MAPPING_ERROR);
    for (int i = 0; i < 512; ++i) EXPECT(ring[i] == 0); /* coherent memory is zeroed */
    ring[0] = cpu_to_le64(0x1122334455667788ULL);
    seen->ring_cpu = ring;
    seen->ring_dma = ring_dma;
    seen->ring_bytes = 256 * 16;
    return NULL;
}

const char *case_dma_free_ring(struct device *dev, struct ring_seen *seen)
{
    dma_free_coherent(dev, seen->ring_bytes, seen->ring_cpu, seen->ring_dma);
    return NULL;
}

const char *case_dma_streaming(struct device *dev, struct kmem_cache *packets, struct stream_seen *seen)
{
    /* A packet buffer from a kmem_cache, mapped for one transmit. */
    u8 *frame = kmem_cache_alloc(packets, GFP_ATOMIC);
    EXPECT(frame != NULL);
    memset(frame, 0x42, 60);
    dma_addr_t tx = dma_map_single(dev, frame, 60, DMA_TO_DEVICE);
    EXPECT(!dma_mapping_error(dev, tx));
    seen->tx_cpu = frame;
    seen->tx_dma = tx;

    /* An RX buffer the device writes. */
    u8 *rx = kmalloc(2048, GFP_KERNEL);
    EXPECT(rx != NULL);
    dma_addr_t rx_dma = dma_map_single(dev, rx, 2048, DMA_FROM_DEVICE);
    EXPECT(!dma_mapping_error(dev, rx_dma));
    seen->rx_cpu = rx;
    seen->rx_dma = rx_dma;

    /* A scatter list of three pieces of one page-aligned buffer. */
    struct page *page = alloc_pages(GFP_KERNEL, 1);
    EXPECT(page != NULL);
    u8 *base = page_address(page);
    sg_init_table(seen->sg, 3);
    sg_set_buf(&seen->sg[0], base, 512);
    sg_set_buf(&seen->sg[1], base + 4096, 1024);
    sg_set_page(&seen->sg[2], page, 100, 2048);
    seen->sg_count = dma_map_sg(dev, seen->sg, 3, DMA_BIDIRECTIONAL);
    EXPECT(seen->sg_count == 3);
    struct scatterlist *sg;
    int i;
    for_each_sg(seen->sg, sg, seen->sg_count, i) {
        EXPECT(sg_dma_len(sg) == sg->length);
        EXPECT(sg_dma_address(sg) != 0);
    }
    seen->sg_page = page;
    return NULL;
}

const char *case_dma_unmap_streaming(struct device *dev, struct kmem_cache *packets, struct stream_seen *seen)
{
    dma_sync_single_for_cpu(dev, seen->rx_dma, 2048, DMA_FROM_DEVICE);
    dma_unmap_single(dev, seen->tx_dma, 60, DMA_TO_DEVICE);
    dma_unmap_single(dev, seen->rx_dma, 2048, DMA_FROM_DEVICE);
    dma_unmap_sg(dev, seen->sg, 3, DMA_BIDIRECTIONAL);
    kmem_cache_free(packets, seen->tx_cpu);
    kfree(seen->rx_cpu);
    __free_pages(seen->sg_page, 1);
    return NULL;
}

const char *case_dma_pool(struct device *dev)
{
    struct dma_pool *pool = dma_pool_create("cmd", dev, 64, 64, 4096);
    EXPECT(pool != NULL);
    dma_addr_t handles[100];
    void *blocks[100];
    for (int i = 0; i < 100; ++i) {
        blocks[i] = dma_pool_zalloc(pool, GFP_KERNEL, &handles[i]);
        EXPECT(blocks[i] != NULL);
        EXPECT((handles[i] & 63) == 0);
        EXPECT((handles[i] / 4096) == ((handles[i] + 63) / 4096)); /* never crosses the boundary */
        for (int b = 0; b < 64; ++b) EXPECT(((u8 *)blocks[i])[b] == 0);
    }
    for (int i = 0; i < 100; ++i) dma_pool_free(pool, blocks[i], handles[i]);
    dma_pool_destroy(pool);
    EXPECT(dma_pool_create("bad", dev, 64, 3, 0) == NULL); /* alignment not a power of two */
    return NULL;
}

const char *case_bad_input(struct device *dev)
{
    /* Each is refused and logged; nothing else changes. */
    int on_stack = 0;
    kfree(&on_stack);
    u8 *buffer = kmalloc(128, GFP_KERNEL);
    EXPECT(buffer != NULL);
    dma_addr_t mapped = dma_map_single(dev, buffer, 128, DMA_TO_DEVICE);
    EXPECT(!dma_mapping_error(dev, mapped));
    dma_unmap_single(dev, mapped + 0x100000, 128, DMA_TO_DEVICE); /* never mapped */
    dma_unmap_single(dev, mapped, 128, DMA_FROM_DEVICE);          /* wrong direction */
    dma_unmap_single(dev, mapped, 128, DMA_TO_DEVICE);            /* right */
    dma_unmap_single(dev, mapped, 128, DMA_TO_DEVICE);            /* double */
    EXPECT(dma_map_single(dev, buffer, 128, DMA_NONE) == DMA_MAPPING_ERROR);
    EXPECT(dma_set_mask(dev, DMA_BIT_MASK(12)) < 0);
    kfree(buffer);
    kfree(buffer); /* double free */
    struct page *page = alloc_pages(GFP_KERNEL, 1);
    EXPECT(page != NULL);
    __free_pages(page, 0); /* wrong order: refused */
    __free_pages(page, 1);
    dma_free_coherent(dev, 4096, &on_stack, 0x1000);
    vfree(&on_stack);
    return NULL;
}

const char *case_atomic_from_an_empty_pool(void)
{
    /* Nothing in the pool yet: an atomic allocation may not grow it. */
    EXPECT(kmalloc(64, GFP_ATOMIC | __GFP_NOWARN) == NULL);
    EXPECT(alloc_pages(GFP_NOWAIT | __GFP_NOWARN, 0) == NULL);
    EXPECT(kmalloc(64, GFP_ATOMIC) == NULL); /* this one says so */
    void *grown = kmalloc(64, GFP_KERNEL);   /* may grow: takes a region */
    EXPECT(grown != NULL);
    u8 *atomic = kzalloc(64, GFP_ATOMIC);    /* now there is pool memory */
    EXPECT(atomic != NULL);
    for (int i = 0; i < 64; ++i) EXPECT(atomic[i] == 0);
    kfree(atomic);
    kfree(grown);
    return NULL;
}
