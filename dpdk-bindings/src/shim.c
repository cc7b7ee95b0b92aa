/* Exported wrappers around DPDK's static inline functions (see shim.h). Each is a plain call:
 * the cost is one function call per burst or per mbuf, which the hot path can afford. */
#include "shim.h"

int saps_rte_errno(void) { return rte_errno; }

uint16_t saps_rte_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t saps_rte_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

int saps_rte_eth_tx_descriptor_status(uint16_t port, uint16_t queue, uint16_t offset)
{
	return rte_eth_tx_descriptor_status(port, queue, offset);
}

int saps_rte_eth_tx_done_cleanup(uint16_t port, uint16_t queue, uint32_t free_cnt)
{
	return rte_eth_tx_done_cleanup(port, queue, free_cnt);
}

struct rte_mbuf *saps_rte_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int saps_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void saps_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

void *saps_rte_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

uint16_t saps_rte_pktmbuf_data_len(const struct rte_mbuf *m) { return rte_pktmbuf_data_len(m); }

uint32_t saps_rte_pktmbuf_pkt_len(const struct rte_mbuf *m) { return rte_pktmbuf_pkt_len(m); }

uint16_t saps_rte_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }

uint16_t saps_rte_pktmbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }

/* A single-segment frame of `len` bytes starting at the data offset. */
void saps_rte_pktmbuf_set_len(struct rte_mbuf *m, uint16_t len)
{
	m->data_len = len;
	m->pkt_len = len;
}
