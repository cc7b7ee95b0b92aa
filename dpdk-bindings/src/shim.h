/* The DPDK surface saps uses: the public headers plus exported wrappers (saps_*) around the
 * static inline functions, which bindgen cannot bind. */
#ifndef SAPS_DPDK_SHIM_H
#define SAPS_DPDK_SHIM_H

#include <stdint.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>

int saps_rte_errno(void);
uint16_t saps_rte_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t saps_rte_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
int saps_rte_eth_tx_descriptor_status(uint16_t port, uint16_t queue, uint16_t offset);
int saps_rte_eth_tx_done_cleanup(uint16_t port, uint16_t queue, uint32_t free_cnt);
struct rte_mbuf *saps_rte_pktmbuf_alloc(struct rte_mempool *mp);
int saps_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
void saps_rte_pktmbuf_free(struct rte_mbuf *m);
void *saps_rte_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t saps_rte_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t saps_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t saps_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
uint16_t saps_rte_pktmbuf_nb_segs(const struct rte_mbuf *m);
void saps_rte_pktmbuf_set_len(struct rte_mbuf *m, uint16_t len);

#endif
