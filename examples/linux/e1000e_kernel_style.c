/*
 * e1000e_kernel_style: an 82574L transmit/receive path written the way the
 * kernel's e1000e driver writes it (netdev.c: e1000_setup_tx_resources,
 * e1000_alloc_rx_buffers, e1000_xmit_frame, e1000_clean_tx_irq,
 * e1000_clean_rx_irq), in C against <dmakit/linux.h> only: descriptor rings
 * from dma_alloc_coherent, packet buffers from a kmem_cache, one streaming
 * map per packet, readl/writel on BAR0. Port A sends N frames to port B on
 * the same wire; B checks every one.
 *
 *   e1000e_kernel_style -a BDF -b BDF [-n N] [--iommu strict] [--help]
 *
 * Register and descriptor layouts: Intel 82574 datasheet §10 (registers),
 * §3.2.4 / §3.3.3 (legacy RX / TX descriptors).
 */
#include <dmakit/linux.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* 82574 registers (§10.2) and bits used here */
#define E1000_CTRL 0x00000
#define E1000_STATUS 0x00008
#define E1000_EECD 0x00010
#define E1000_ICR 0x000C0
#define E1000_IMC 0x000D8
#define E1000_RCTL 0x00100
#define E1000_TCTL 0x00400
#define E1000_TIPG 0x00410
#define E1000_RDBAL 0x02800
#define E1000_RDBAH 0x02804
#define E1000_RDLEN 0x02808
#define E1000_RDH 0x02810
#define E1000_RDT 0x02818
#define E1000_TDBAL 0x03800
#define E1000_TDBAH 0x03804
#define E1000_TDLEN 0x03808
#define E1000_TDH 0x03810
#define E1000_TDT 0x03818
#define E1000_TARC0 0x03840
#define E1000_CTRL_RST BIT(26)
#define E1000_CTRL_SLU BIT(6)
#define E1000_CTRL_ASDE BIT(5)
#define E1000_STATUS_LU BIT(1)
#define E1000_EECD_AUTO_RD BIT(9)
#define E1000_RCTL_EN BIT(1)
#define E1000_RCTL_BAM BIT(15)
#define E1000_RCTL_SECRC BIT(26)
#define E1000_TCTL_EN BIT(1)
#define E1000_TCTL_PSP BIT(3)
#define E1000_TARC_ENABLE BIT(10)
#define E1000_TXD_CMD_EOP 0x01
#define E1000_TXD_CMD_IFCS 0x02
#define E1000_TXD_CMD_RS 0x08
#define E1000_TXD_STAT_DD 0x01
#define E1000_RXD_STAT_DD 0x01
#define E1000_RXD_STAT_EOP 0x02

#define RING_SIZE 256
#define BUFFER_SIZE 2048
#define FRAME_LEN 128
#define ETH_P_DMAKIT 0x88b5 /* IEEE local experimental ethertype */

struct e1000_tx_desc { /* §3.3.3 legacy */
    __le64 buffer_addr;
    __le16 length;
    u8 cso;
    u8 cmd;
    u8 status;
    u8 css;
    __le16 special;
};

struct e1000_rx_desc { /* §3.2.4 legacy */
    __le64 buffer_addr;
    __le16 length;
    __le16 csum;
    u8 status;
    u8 errors;
    __le16 special;
};

struct e1000_buffer {
    void *data;
    dma_addr_t dma;
};

struct e1000_ring {
    void *desc;
    dma_addr_t dma;
    unsigned int count;
    unsigned int next_to_use;
    unsigned int next_to_clean;
    struct e1000_buffer buffer_info[RING_SIZE];
};

struct e1000_adapter {
    struct device *dev;
    u8 __iomem *hw_addr;
    struct kmem_cache *buffers;
    struct e1000_ring tx_ring;
    struct e1000_ring rx_ring;
};

static u32 er32(struct e1000_adapter *a, u32 reg) { return readl(a->hw_addr + reg); }
static void ew32(struct e1000_adapter *a, u32 reg, u32 value) { writel(value, a->hw_addr + reg); }

static int e1000_wait(struct e1000_adapter *a, u32 reg, u32 mask, u32 want, unsigned int ms, const char *what)
{
    for (unsigned int waited = 0; waited <= ms; ++waited) {
        u32 v = er32(a, reg);
        if (v == 0xffffffff) {
            dev_err(a->dev, "reads all ones %s: the device is gone or its BAR is off", what);
            return -ENODEV;
        }
        if ((v & mask) == want) return 0;
        msleep(1);
    }
    dev_err(a->dev, "timed out after %u ms %s; reset the function: dmakit unbind %s && dmakit bind %s", ms, what,
            dev_name(a->dev), dev_name(a->dev));
    return -ETIMEDOUT;
}

static int e1000_reset_hw(struct e1000_adapter *a)
{
    ew32(a, E1000_IMC, 0xffffffff);
    ew32(a, E1000_RCTL, 0);
    ew32(a, E1000_TCTL, 0);
    ew32(a, E1000_CTRL, er32(a, E1000_CTRL) | E1000_CTRL_RST);
    msleep(1);
    int err = e1000_wait(a, E1000_CTRL, E1000_CTRL_RST, 0, 100, "waiting for CTRL.RST to clear");
    if (!err) err = e1000_wait(a, E1000_EECD, E1000_EECD_AUTO_RD, E1000_EECD_AUTO_RD, 100, "waiting for NVM auto-read");
    if (err) return err;
    ew32(a, E1000_IMC, 0xffffffff);
    (void)er32(a, E1000_ICR);
    ew32(a, E1000_CTRL, (er32(a, E1000_CTRL) | E1000_CTRL_SLU | E1000_CTRL_ASDE));
    return e1000_wait(a, E1000_STATUS, E1000_STATUS_LU, E1000_STATUS_LU, 5000, "waiting for link up");
}

static int e1000_setup_ring(struct e1000_adapter *a, struct e1000_ring *ring)
{
    ring->count = RING_SIZE;
    ring->desc = dma_alloc_coherent(a->dev, ring->count * 16, &ring->dma, GFP_KERNEL);
    if (!ring->desc) return -ENOMEM;
    ring->next_to_use = ring->next_to_clean = 0;
    memset(ring->buffer_info, 0, sizeof(ring->buffer_info));
    return 0;
}

static void e1000_free_ring(struct e1000_adapter *a, struct e1000_ring *ring, enum dma_data_direction dir)
{
    for (unsigned int i = 0; i < ring->count; ++i) {
        struct e1000_buffer *b = &ring->buffer_info[i];
        if (!b->data) continue;
        dma_unmap_single(a->dev, b->dma, BUFFER_SIZE, dir);
        kmem_cache_free(a->buffers, b->data);
        b->data = NULL;
    }
    if (ring->desc) dma_free_coherent(a->dev, ring->count * 16, ring->desc, ring->dma);
    ring->desc = NULL;
}

/* Gives the device a buffer in every free RX slot (one slot stays empty).
 * GFP_KERNEL at open (the pool may grow), GFP_ATOMIC from the RX path. */
static int e1000_alloc_rx_buffers(struct e1000_adapter *a, gfp_t gfp)
{
    struct e1000_ring *ring = &a->rx_ring;
    struct e1000_rx_desc *desc = ring->desc;
    unsigned int i = ring->next_to_use, filled = 0;
    while (((i + 1) % ring->count) != ring->next_to_clean) {
        struct e1000_buffer *b = &ring->buffer_info[i];
        b->data = kmem_cache_alloc(a->buffers, gfp);
        if (!b->data) break;
        b->dma = dma_map_single(a->dev, b->data, BUFFER_SIZE, DMA_FROM_DEVICE);
        if (dma_mapping_error(a->dev, b->dma)) {
            kmem_cache_free(a->buffers, b->data);
            b->data = NULL;
            break;
        }
        desc[i].buffer_addr = cpu_to_le64(b->dma);
        desc[i].status = 0;
        i = (i + 1) % ring->count;
        ++filled;
    }
    if (filled) {
        ring->next_to_use = i;
        wmb(); /* descriptors before the tail that hands them over */
        ew32(a, E1000_RDT, i);
    }
    return ring->next_to_use == ring->next_to_clean ? -ENOMEM : 0;
}

static void e1000_configure(struct e1000_adapter *a)
{
    struct e1000_ring *tx = &a->tx_ring, *rx = &a->rx_ring;
    ew32(a, E1000_TDBAL, lower_32_bits(tx->dma));
    ew32(a, E1000_TDBAH, upper_32_bits(tx->dma));
    ew32(a, E1000_TDLEN, tx->count * 16);
    ew32(a, E1000_TDH, 0);
    ew32(a, E1000_TDT, 0);
    ew32(a, E1000_TIPG, 8u | (8u << 10) | (6u << 20));
    ew32(a, E1000_TARC0, er32(a, E1000_TARC0) | E1000_TARC_ENABLE);
    ew32(a, E1000_TCTL, E1000_TCTL_EN | E1000_TCTL_PSP | (0x0f << 4) | (0x3f << 12));
    ew32(a, E1000_RDBAL, lower_32_bits(rx->dma));
    ew32(a, E1000_RDBAH, upper_32_bits(rx->dma));
    ew32(a, E1000_RDLEN, rx->count * 16);
    ew32(a, E1000_RDH, 0);
    ew32(a, E1000_RDT, 0);
    ew32(a, E1000_RCTL, E1000_RCTL_EN | E1000_RCTL_BAM | E1000_RCTL_SECRC);
}

static void build_frame(u8 *frame, u32 run, u32 seq)
{
    memset(frame, 0xff, 6);                                 /* broadcast */
    const u8 src[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01}; /* locally administered */
    memcpy(frame + 6, src, 6);
    frame[12] = ETH_P_DMAKIT >> 8;
    frame[13] = ETH_P_DMAKIT & 0xff;
    memcpy(frame + 14, &run, 4);
    memcpy(frame + 18, &seq, 4);
    for (int i = 22; i < FRAME_LEN; ++i) frame[i] = (u8)(seq * 7 + i);
}

/* 1: one of this run's frames, intact, sequence in *seq; 0: someone else's; -1: damaged. */
static int check_frame(const u8 *frame, unsigned int len, u32 run, u32 *seq)
{
    u32 frame_run;
    if (len < 22 || frame[12] != (ETH_P_DMAKIT >> 8) || frame[13] != (ETH_P_DMAKIT & 0xff)) return 0;
    memcpy(&frame_run, frame + 14, 4);
    if (frame_run != run) return 0;
    memcpy(seq, frame + 18, 4);
    if (len != FRAME_LEN) return -1;
    for (unsigned int i = 22; i < FRAME_LEN; ++i)
        if (frame[i] != (u8)(*seq * 7 + i)) return -1;
    return 1;
}

/* Sends one frame; -EBUSY when the ring is full. */
static int e1000_xmit_frame(struct e1000_adapter *a, u32 run, u32 seq)
{
    struct e1000_ring *ring = &a->tx_ring;
    struct e1000_tx_desc *desc = ring->desc;
    unsigned int i = ring->next_to_use;
    if (((i + 1) % ring->count) == ring->next_to_clean) return -EBUSY;
    struct e1000_buffer *b = &ring->buffer_info[i];
    b->data = kmem_cache_alloc(a->buffers, GFP_ATOMIC);
    if (!b->data) return -ENOMEM;
    build_frame(b->data, run, seq);
    b->dma = dma_map_single(a->dev, b->data, BUFFER_SIZE, DMA_TO_DEVICE);
    if (dma_mapping_error(a->dev, b->dma)) {
        kmem_cache_free(a->buffers, b->data);
        b->data = NULL;
        return -ENOMEM;
    }
    desc[i].buffer_addr = cpu_to_le64(b->dma);
    desc[i].length = cpu_to_le16(FRAME_LEN);
    desc[i].cmd = E1000_TXD_CMD_EOP | E1000_TXD_CMD_IFCS | E1000_TXD_CMD_RS;
    desc[i].status = 0;
    ring->next_to_use = (i + 1) % ring->count;
    wmb();
    ew32(a, E1000_TDT, ring->next_to_use);
    return 0;
}

/* Frees what the device has sent (DD written back). */
static void e1000_clean_tx_irq(struct e1000_adapter *a)
{
    struct e1000_ring *ring = &a->tx_ring;
    struct e1000_tx_desc *desc = ring->desc;
    while (ring->next_to_clean != ring->next_to_use) {
        unsigned int i = ring->next_to_clean;
        if (!(READ_ONCE(desc[i].status) & E1000_TXD_STAT_DD)) break;
        dma_rmb();
        struct e1000_buffer *b = &ring->buffer_info[i];
        dma_unmap_single(a->dev, b->dma, BUFFER_SIZE, DMA_TO_DEVICE);
        kmem_cache_free(a->buffers, b->data);
        b->data = NULL;
        ring->next_to_clean = (i + 1) % ring->count;
    }
}

struct rx_counts {
    unsigned long ok, foreign, damaged, out_of_order, bad_length;
    u32 next_seq;
};

static void e1000_clean_rx_irq(struct e1000_adapter *a, u32 run, struct rx_counts *c)
{
    struct e1000_ring *ring = &a->rx_ring;
    struct e1000_rx_desc *desc = ring->desc;
    while (ring->next_to_clean != ring->next_to_use) {
        unsigned int i = ring->next_to_clean;
        if (!(READ_ONCE(desc[i].status) & E1000_RXD_STAT_DD)) break;
        dma_rmb(); /* the length after DD */
        struct e1000_buffer *b = &ring->buffer_info[i];
        unsigned int len = le16_to_cpu(desc[i].length);
        dma_unmap_single(a->dev, b->dma, BUFFER_SIZE, DMA_FROM_DEVICE);
        u32 seq = 0;
        /* Never trust the device: a length beyond the buffer is not followed. */
        int verdict = len > BUFFER_SIZE || !(desc[i].status & E1000_RXD_STAT_EOP) ? -2 : check_frame(b->data, len, run, &seq);
        if (verdict == -2) {
            c->bad_length++;
        } else if (verdict == 1) {
            if (seq != c->next_seq) c->out_of_order++;
            c->next_seq = seq + 1;
            c->ok++;
        } else if (verdict == 0) {
            c->foreign++;
        } else {
            c->damaged++;
        }
        kmem_cache_free(a->buffers, b->data);
        b->data = NULL;
        ring->next_to_clean = (i + 1) % ring->count;
    }
    (void)e1000_alloc_rx_buffers(a, GFP_ATOMIC);
}

static int e1000_probe(struct e1000_adapter *a, struct device *dev, struct kmem_cache *buffers)
{
    memset(a, 0, sizeof(*a));
    a->dev = dev;
    a->buffers = buffers;
    size_t bar_len = 0;
    a->hw_addr = dmakit_iomap_bar(dev, 0, &bar_len);
    if (!a->hw_addr || bar_len < 0x10000) {
        dev_err(dev, "BAR0 is missing or too small for an 82574");
        return -ENODEV;
    }
    int err = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64));
    if (err) return err;
    err = e1000_reset_hw(a);
    if (!err) err = e1000_setup_ring(a, &a->tx_ring);
    if (!err) err = e1000_setup_ring(a, &a->rx_ring);
    if (err) return err;
    e1000_configure(a);
    return e1000_alloc_rx_buffers(a, GFP_KERNEL);
}

static void e1000_remove(struct e1000_adapter *a)
{
    if (a->hw_addr) {
        ew32(a, E1000_RCTL, 0);
        ew32(a, E1000_TCTL, 0);
        ew32(a, E1000_CTRL, er32(a, E1000_CTRL) | E1000_CTRL_RST); /* the device lets go of the rings */
        msleep(2);
    }
    e1000_free_ring(a, &a->tx_ring, DMA_TO_DEVICE);
    e1000_free_ring(a, &a->rx_ring, DMA_FROM_DEVICE);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: e1000e_kernel_style -a BDF -b BDF [options]\n\n"
            "Port A sends N frames to port B on the same wire through an 82574L driver\n"
            "written in kernel style against <dmakit/linux.h>; B checks every frame.\n"
            "Both ports must be on vfio-pci (dmakit bind BDF). Exits 1 on any loss.\n\n"
            "  -a BDF          sending port\n"
            "  -b BDF          receiving port\n"
            "  -n N            frames to send, 1..10000000 (default 10000)\n"
            "  --iommu MODE    pool (default) or strict (every buffer mapped on its own)\n"
            "  -h, --help      this text\n");
}

int main(int argc, char **argv)
{
    const char *bdf[2] = {NULL, NULL};
    unsigned long count = 10000;
    struct dmakit_kernel_options options = {0, 0, -1};
    for (int i = 1; i < argc; ++i) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(arg, "-a") || !strcmp(arg, "-b")) && value) {
            if (bdf[arg[1] == 'b']) {
                fprintf(stderr, "e1000e_kernel_style: %s given twice (%s, then %s); give one port each to -a and -b\n",
                        arg, bdf[arg[1] == 'b'], value);
                return 2;
            }
            bdf[arg[1] == 'b'] = value;
            ++i;
        } else if (!strcmp(arg, "-n") && value) {
            char *end = NULL;
            count = strtoul(value, &end, 10);
            if (*value < '0' || *value > '9' || *end || count < 1 || count > 10000000) {
                fprintf(stderr, "e1000e_kernel_style: -n wants a whole number 1..10000000, got '%s'\n", value);
                return 2;
            }
            ++i;
        } else if (!strcmp(arg, "--iommu") && value && (!strcmp(value, "pool") || !strcmp(value, "strict"))) {
            options.iommu_strict = !strcmp(value, "strict");
            ++i;
        } else {
            fprintf(stderr, "e1000e_kernel_style: bad or incomplete option '%s' (see --help)\n", arg);
            return 2;
        }
    }
    if (!bdf[0] || !bdf[1]) {
        fprintf(stderr, "e1000e_kernel_style: give both ports, -a BDF -b BDF (see --help)\n");
        return 2;
    }
    if (!strcasecmp(bdf[0], bdf[1])) {
        fprintf(stderr, "e1000e_kernel_style: -a and -b name the same port %s; give two ports on one wire\n", bdf[0]);
        return 2;
    }

    struct dmakit_kernel *kernel = dmakit_kernel_open(bdf, 2, &options);
    if (!kernel) return 1; /* the reason is logged */
    int status = 1;
    struct e1000_adapter tx_port, rx_port;
    memset(&tx_port, 0, sizeof(tx_port));
    memset(&rx_port, 0, sizeof(rx_port));
    struct kmem_cache *buffers = kmem_cache_create("e1000e_buffers", BUFFER_SIZE, 64, 0, NULL);
    if (buffers && !e1000_probe(&tx_port, dmakit_kernel_device(kernel, 0), buffers) &&
        !e1000_probe(&rx_port, dmakit_kernel_device(kernel, 1), buffers)) {
        const u32 run = (u32)time(NULL) ^ 0x9e3779b9u;
        struct rx_counts c;
        memset(&c, 0, sizeof(c));
        unsigned long sent = 0;
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
            /* A window of a ring's worth in flight: the wire drops nothing then. */
            while (sent < count && sent - c.ok - c.damaged < RING_SIZE / 2 && !e1000_xmit_frame(&tx_port, run, (u32)sent))
                ++sent;
            e1000_clean_tx_irq(&tx_port);
            e1000_clean_rx_irq(&rx_port, run, &c);
            if (c.ok + c.damaged >= count) break;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - start.tv_sec > 30) break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        while (tx_port.tx_ring.next_to_clean != tx_port.tx_ring.next_to_use &&
               now.tv_sec - start.tv_sec <= 35) { /* the last completions */
            e1000_clean_tx_irq(&tx_port);
            clock_gettime(CLOCK_MONOTONIC, &now);
        }
        double seconds = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
        printf("%s -> %s: sent %lu, received %lu intact in %.2f s; lost %lu, damaged %lu, bad length %lu, "
               "out of order %lu, other frames ignored %lu\n",
               bdf[0], bdf[1], sent, c.ok, seconds, count - c.ok - c.damaged, c.damaged, c.bad_length,
               c.out_of_order, c.foreign);
        status = c.ok == count && c.damaged == 0 && c.out_of_order == 0 && c.bad_length == 0 ? 0 : 1;
        printf("%s\n", status == 0 ? "PASS" : "FAIL");
    }
    e1000_remove(&tx_port);
    e1000_remove(&rx_port);
    kmem_cache_destroy(buffers);
    dmakit_kernel_close(kernel);
    return status;
}
