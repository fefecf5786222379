// Intel 82574 (QEMU "e1000e") register offsets and bits.
//
// Source: Intel 82574 GbE Controller Family Datasheet, rev 3.4, chapter 10
// ("Driver Programming Interface", §10.2 register descriptions). Offsets are
// the authoritative part; subsection numbers quoted below are given as found.
// Cross-checked against QEMU's hw/net/e1000e_core.c (what the emulated model
// implements) and the e1000 register map.
#pragma once

#include <cstdint>

namespace dmakit::net::e1000e::reg {

// ---- General (§10.2.2) ----
inline constexpr std::uint32_t CTRL = 0x00000;      // Device Control
inline constexpr std::uint32_t STATUS = 0x00008;    // Device Status (read only)
inline constexpr std::uint32_t EECD = 0x00010;      // EEPROM/Flash Control (EEC)
inline constexpr std::uint32_t EERD = 0x00014;      // EEPROM Read
inline constexpr std::uint32_t CTRL_EXT = 0x00018;  // Extended Device Control
inline constexpr std::uint32_t MDIC = 0x00020;      // MDI Control (PHY access)

// ---- Interrupts (§10.2.4) ----
inline constexpr std::uint32_t ICR = 0x000C0;   // Interrupt Cause Read (clears on read)
inline constexpr std::uint32_t ITR = 0x000C4;   // Interrupt Throttling
inline constexpr std::uint32_t ICS = 0x000C8;   // Interrupt Cause Set
inline constexpr std::uint32_t IMS = 0x000D0;   // Interrupt Mask Set/Read
inline constexpr std::uint32_t IMC = 0x000D8;   // Interrupt Mask Clear
inline constexpr std::uint32_t IAM = 0x000E0;   // Interrupt Acknowledge Auto-Mask
inline constexpr std::uint32_t EIAC = 0x000DC;  // MSI-X causes cleared from ICR when signalled
inline constexpr std::uint32_t IVAR = 0x000E4;  // MSI-X cause -> vector allocation
inline constexpr std::uint32_t EITR0 = 0x000E8; // MSI-X vector throttling, 5 vectors, 4 apart

// ---- Receive (§10.2.5) ----
inline constexpr std::uint32_t RCTL = 0x00100;    // Receive Control
inline constexpr std::uint32_t RDBAL0 = 0x02800;  // RX descriptor base low (queue 0)
inline constexpr std::uint32_t RDBAH0 = 0x02804;
inline constexpr std::uint32_t RDLEN0 = 0x02808;  // ring bytes, multiple of 128
inline constexpr std::uint32_t RDH0 = 0x02810;
inline constexpr std::uint32_t RDT0 = 0x02818;
inline constexpr std::uint32_t RDTR = 0x02820;    // RX interrupt delay timer
inline constexpr std::uint32_t RXDCTL0 = 0x02828;
inline constexpr std::uint32_t RADV = 0x0282C;
inline constexpr std::uint32_t RXCSUM = 0x05000;
inline constexpr std::uint32_t RFCTL = 0x05008;   // RX filter control; EXTEN selects extended descs
inline constexpr std::uint32_t MTA0 = 0x05200;    // multicast table, 128 x 32 bits
inline constexpr std::uint32_t MTA_ENTRIES = 128;
inline constexpr std::uint32_t RAL0 = 0x05400;    // receive address low, entry 0
inline constexpr std::uint32_t RAH0 = 0x05404;    // receive address high, entry 0
// Queue n's ring registers sit 0x100 apart.
inline constexpr std::uint32_t queue_stride = 0x100;

// ---- Transmit (§10.2.6) ----
inline constexpr std::uint32_t TCTL = 0x00400;
inline constexpr std::uint32_t TIPG = 0x00410;
inline constexpr std::uint32_t TDBAL0 = 0x03800;
inline constexpr std::uint32_t TDBAH0 = 0x03804;
inline constexpr std::uint32_t TDLEN0 = 0x03808;
inline constexpr std::uint32_t TDH0 = 0x03810;
inline constexpr std::uint32_t TDT0 = 0x03818;
inline constexpr std::uint32_t TIDV = 0x03820;
inline constexpr std::uint32_t TXDCTL0 = 0x03828;
inline constexpr std::uint32_t TADV = 0x0382C;
inline constexpr std::uint32_t TARC0 = 0x03840;

// ---- Statistics (§10.2.7): clear on read per the datasheet ----
// QEMU's model clears the ones it counts (GPRC, GPTC, TPR, TPT, BPRC, MPRC,
// BPTC, MPTC, RUC, ROC, PRCxx/PTCxx, and the 64-bit pairs); it leaves
// CRCERRS..MPC as plain registers but never increments them, so treating all
// as clear-on-read is right for both. The 64-bit pairs must be read low then
// high: in QEMU reading the high half clears both halves.
inline constexpr std::uint32_t CRCERRS = 0x04000;
inline constexpr std::uint32_t ALGNERRC = 0x04004;
inline constexpr std::uint32_t SYMERRS = 0x04008;
inline constexpr std::uint32_t RXERRC = 0x0400C;
inline constexpr std::uint32_t MPC = 0x04010;      // missed packets
inline constexpr std::uint32_t SCC = 0x04014;
inline constexpr std::uint32_t ECOL = 0x04018;
inline constexpr std::uint32_t MCC = 0x0401C;
inline constexpr std::uint32_t LATECOL = 0x04020;
inline constexpr std::uint32_t COLC = 0x04028;
inline constexpr std::uint32_t DC = 0x04030;
inline constexpr std::uint32_t TNCRS = 0x04034;
inline constexpr std::uint32_t RLEC = 0x04040;
inline constexpr std::uint32_t XONRXC = 0x04048;
inline constexpr std::uint32_t XONTXC = 0x0404C;
inline constexpr std::uint32_t XOFFRXC = 0x04050;
inline constexpr std::uint32_t XOFFTXC = 0x04054;
inline constexpr std::uint32_t FCRUC = 0x04058;
inline constexpr std::uint32_t GPRC = 0x04074;     // good packets received
inline constexpr std::uint32_t BPRC = 0x04078;
inline constexpr std::uint32_t MPRC = 0x0407C;
inline constexpr std::uint32_t GPTC = 0x04080;     // good packets transmitted
inline constexpr std::uint32_t GORCL = 0x04088;    // good octets received, low/high
inline constexpr std::uint32_t GORCH = 0x0408C;
inline constexpr std::uint32_t GOTCL = 0x04090;
inline constexpr std::uint32_t GOTCH = 0x04094;
inline constexpr std::uint32_t RNBC = 0x040A0;     // receive no buffers
inline constexpr std::uint32_t RUC = 0x040A4;
inline constexpr std::uint32_t RFC = 0x040A8;
inline constexpr std::uint32_t ROC = 0x040AC;
inline constexpr std::uint32_t RJC = 0x040B0;
inline constexpr std::uint32_t TORL = 0x040C0;
inline constexpr std::uint32_t TORH = 0x040C4;
inline constexpr std::uint32_t TOTL = 0x040C8;
inline constexpr std::uint32_t TOTH = 0x040CC;
inline constexpr std::uint32_t TPR = 0x040D0;
inline constexpr std::uint32_t TPT = 0x040D4;
inline constexpr std::uint32_t MPTC = 0x040F0;
inline constexpr std::uint32_t BPTC = 0x040F4;

[[nodiscard]] constexpr std::uint32_t rx_queue(std::uint32_t reg0, std::uint32_t queue) {
    return reg0 + queue * queue_stride;
}
[[nodiscard]] constexpr std::uint32_t tx_queue(std::uint32_t reg0, std::uint32_t queue) {
    return reg0 + queue * queue_stride;
}

}  // namespace dmakit::net::e1000e::reg

namespace dmakit::net::e1000e::bits {

constexpr std::uint32_t bit(unsigned n) { return std::uint32_t{1} << n; }

// CTRL (0x0000)
inline constexpr std::uint32_t CTRL_FD = bit(0);
inline constexpr std::uint32_t CTRL_GIO_MASTER_DISABLE = bit(2);
inline constexpr std::uint32_t CTRL_ASDE = bit(5);   // auto-speed detection
inline constexpr std::uint32_t CTRL_SLU = bit(6);    // set link up
inline constexpr std::uint32_t CTRL_FRCSPD = bit(11);
inline constexpr std::uint32_t CTRL_FRCDPX = bit(12);
inline constexpr std::uint32_t CTRL_RST = bit(26);   // global reset, self-clearing
inline constexpr std::uint32_t CTRL_RFCE = bit(27);
inline constexpr std::uint32_t CTRL_TFCE = bit(28);
inline constexpr std::uint32_t CTRL_VME = bit(30);
inline constexpr std::uint32_t CTRL_PHY_RST = bit(31);

// STATUS (0x0008)
inline constexpr std::uint32_t STATUS_FD = bit(0);
inline constexpr std::uint32_t STATUS_LU = bit(1);
inline constexpr std::uint32_t STATUS_SPEED_SHIFT = 6;  // 00: 10, 01: 100, 1x: 1000 Mb/s
inline constexpr std::uint32_t STATUS_SPEED_MASK = 3u << STATUS_SPEED_SHIFT;
inline constexpr std::uint32_t STATUS_GIO_MASTER_ENABLE = bit(19);

// EECD (0x0010)
inline constexpr std::uint32_t EECD_PRES = bit(8);     // NVM present
inline constexpr std::uint32_t EECD_AUTO_RD = bit(9);  // NVM auto-read done after reset

// EERD (0x0014): START bit 0, DONE bit 1, ADDR 15:2, DATA 31:16
inline constexpr std::uint32_t EERD_START = bit(0);
inline constexpr std::uint32_t EERD_DONE = bit(1);
inline constexpr std::uint32_t EERD_ADDR_SHIFT = 2;
inline constexpr std::uint32_t EERD_DATA_SHIFT = 16;

// CTRL_EXT (0x0018)
inline constexpr std::uint32_t CTRL_EXT_EIAME = bit(24);
inline constexpr std::uint32_t CTRL_EXT_IAME = bit(27);
inline constexpr std::uint32_t CTRL_EXT_PBA_CLR = bit(31);

// ICR/ICS/IMS/IMC cause bits
inline constexpr std::uint32_t INT_TXDW = bit(0);    // TX descriptor written back
inline constexpr std::uint32_t INT_TXQE = bit(1);    // TX queue empty
inline constexpr std::uint32_t INT_LSC = bit(2);     // link status change
inline constexpr std::uint32_t INT_RXDMT0 = bit(4);  // RX descriptors below threshold
inline constexpr std::uint32_t INT_RXO = bit(6);     // RX overrun
inline constexpr std::uint32_t INT_RXT0 = bit(7);    // RX timer (packet received)
inline constexpr std::uint32_t INT_RXQ0 = bit(20);   // MSI-X causes
inline constexpr std::uint32_t INT_RXQ1 = bit(21);
inline constexpr std::uint32_t INT_TXQ0 = bit(22);
inline constexpr std::uint32_t INT_TXQ1 = bit(23);
inline constexpr std::uint32_t INT_OTHER = bit(24);
inline constexpr std::uint32_t INT_ALL = 0xFFFFFFFFu;

// IVAR (0x00E4): 4-bit fields (3-bit vector + valid bit 3) for RXQ0, RXQ1,
// TXQ0, TXQ1, OTHER at bits 0, 4, 8, 12, 16; bit 31 = write back on every TX desc.
inline constexpr std::uint32_t IVAR_VALID = 0x8;
inline constexpr std::uint32_t IVAR_RXQ0_SHIFT = 0;
inline constexpr std::uint32_t IVAR_RXQ1_SHIFT = 4;
inline constexpr std::uint32_t IVAR_TXQ0_SHIFT = 8;
inline constexpr std::uint32_t IVAR_TXQ1_SHIFT = 12;
inline constexpr std::uint32_t IVAR_OTHER_SHIFT = 16;
inline constexpr std::uint32_t IVAR_TX_INT_EVERY_WB = bit(31);

// RCTL (0x0100)
inline constexpr std::uint32_t RCTL_EN = bit(1);
inline constexpr std::uint32_t RCTL_SBP = bit(2);    // store bad packets
inline constexpr std::uint32_t RCTL_UPE = bit(3);    // unicast promiscuous
inline constexpr std::uint32_t RCTL_MPE = bit(4);    // multicast promiscuous
inline constexpr std::uint32_t RCTL_LPE = bit(5);    // long packets (jumbo)
inline constexpr std::uint32_t RCTL_LBM_MASK = 3u << 6;
inline constexpr std::uint32_t RCTL_RDMTS_HALF = 0u << 8;
inline constexpr std::uint32_t RCTL_DTYP_MASK = 3u << 10;  // 00 legacy/extended, 01 packet split
inline constexpr std::uint32_t RCTL_MO_MASK = 3u << 12;
inline constexpr std::uint32_t RCTL_BAM = bit(15);   // accept broadcast
inline constexpr std::uint32_t RCTL_BSIZE_MASK = 3u << 16;
inline constexpr std::uint32_t RCTL_BSIZE_2048 = 0u << 16;  // with BSEX = 0
inline constexpr std::uint32_t RCTL_VFE = bit(18);
inline constexpr std::uint32_t RCTL_BSEX = bit(25);
inline constexpr std::uint32_t RCTL_SECRC = bit(26); // strip Ethernet CRC
inline constexpr std::uint32_t RCTL_FLXBUF_MASK = 0xFu << 27;

// RFCTL (0x5008)
inline constexpr std::uint32_t RFCTL_EXTEN = bit(15);  // extended RX descriptors

// RAH
inline constexpr std::uint32_t RAH_AV = bit(31);       // address valid

// TCTL (0x0400)
inline constexpr std::uint32_t TCTL_EN = bit(1);
inline constexpr std::uint32_t TCTL_PSP = bit(3);      // pad short packets
inline constexpr std::uint32_t TCTL_CT_SHIFT = 4;      // collision threshold
inline constexpr std::uint32_t TCTL_COLD_SHIFT = 12;   // collision distance
inline constexpr std::uint32_t TCTL_RTLC = bit(24);
inline constexpr std::uint32_t TCTL_CT_DEFAULT = 0x0F;     // datasheet recommended
inline constexpr std::uint32_t TCTL_COLD_FULL_DUPLEX = 0x3F;

// TIPG (0x0410): IPGT 9:0, IPGR1 19:10, IPGR2 29:20. 8/8/6 is the copper
// recommendation and QEMU's reset value.
inline constexpr std::uint32_t TIPG_DEFAULT = 8u | (8u << 10) | (6u << 20);

// TARC0 bit 10: queue enable. QEMU only transmits from rings whose TARC has it
// (its reset value sets it).
inline constexpr std::uint32_t TARC_ENABLE = bit(10);

}  // namespace dmakit::net::e1000e::bits
