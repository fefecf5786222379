/* The C cases of kernel_patterns.c, called by linux_c_test.cpp. */
#ifndef DMAKIT_TESTS_KERNEL_PATTERNS_H
#define DMAKIT_TESTS_KERNEL_PATTERNS_H

#ifdef __cplusplus
extern "C" {
#endif

/* What the C code set up, for the test to look at from the device's side. */
struct ring_seen {
    void *ring_cpu;
    dma_addr_t ring_dma;
    size_t ring_bytes;
};

struct stream_seen {
    void *tx_cpu;
    dma_addr_t tx_dma;
    void *rx_cpu;
    dma_addr_t rx_dma;
    struct scatterlist sg[3];
    int sg_count;
    struct page *sg_page;
};

const char *case_kmalloc_family(void);
const char *case_kmem_cache(void);
const char *case_pages(void);
const char *case_vmalloc(void);
const char *case_dma_coherent_ring(struct device *dev, struct ring_seen *seen);
const char *case_dma_free_ring(struct device *dev, struct ring_seen *seen);
const char *case_dma_streaming(struct device *dev, struct kmem_cache *packets, struct stream_seen *seen);
const char *case_dma_unmap_streaming(struct device *dev, struct kmem_cache *packets, struct stream_seen *seen);
const char *case_dma_pool(struct device *dev);
const char *case_bad_input(struct device *dev);
const char *case_atomic_from_an_empty_pool(void);

#ifdef __cplusplus
}
#endif

#endif
