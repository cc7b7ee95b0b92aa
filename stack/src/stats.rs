//! Counters an operator needs. Plain `u64` fields: the data plane owns them and the appliance
//! publishes copies to its telemetry thread.

/// Why a received frame or segment was dropped.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Too short or inconsistent length fields.
    Malformed,
    /// Header or payload checksum failed.
    BadChecksum,
    /// Not addressed to one of our MAC or IPv4 addresses.
    NotForUs,
    /// EtherType or IP protocol this stack does not handle.
    UnsupportedProtocol,
    /// IPv4 fragment (reassembly is not supported; see docs/architecture.md).
    Fragment,
    /// TCP segment for a port with no listener (answered with RST).
    NoListener,
    /// UDP datagram for a port with no socket (answered with ICMP port unreachable).
    NoUdpSocket,
    /// SYN dropped because the SYN backlog was full and cookies are off.
    BacklogFull,
    /// Connection accepted but the accept queue was full.
    AcceptQueueFull,
    /// Segment outside the receive window.
    OutOfWindow,
    /// Segment rejected by PAWS (RFC 7323).
    Paws,
    /// No buffer left (UDP receive queue, ARP pending queue, reassembly budget).
    NoBuffer,
    /// Invalid SYN cookie.
    BadCookie,
}

impl DropReason {
    /// Every reason, in a fixed order (telemetry iterates this).
    pub const ALL: [DropReason; 13] = [
        DropReason::Malformed,
        DropReason::BadChecksum,
        DropReason::NotForUs,
        DropReason::UnsupportedProtocol,
        DropReason::Fragment,
        DropReason::NoListener,
        DropReason::NoUdpSocket,
        DropReason::BacklogFull,
        DropReason::AcceptQueueFull,
        DropReason::OutOfWindow,
        DropReason::Paws,
        DropReason::NoBuffer,
        DropReason::BadCookie,
    ];

    /// Label value used in telemetry.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::NotForUs => "not_for_us",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::Fragment => "fragment",
            DropReason::NoListener => "no_listener",
            DropReason::NoUdpSocket => "no_udp_socket",
            DropReason::BacklogFull => "backlog_full",
            DropReason::AcceptQueueFull => "accept_queue_full",
            DropReason::OutOfWindow => "out_of_window",
            DropReason::Paws => "paws",
            DropReason::NoBuffer => "no_buffer",
            DropReason::BadCookie => "bad_cookie",
        }
    }
}

/// Packets and bytes in one direction.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PacketCount {
    /// Packets.
    pub packets: u64,
    /// Bytes (of this layer's header plus payload).
    pub bytes: u64,
}

impl PacketCount {
    /// Count one packet of `bytes` bytes.
    #[inline]
    pub fn add(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }

    /// Add another count to this one.
    pub fn accumulate(&mut self, other: &PacketCount) {
        self.packets += other.packets;
        self.bytes += other.bytes;
    }
}

/// TCP-specific counters, updated by connections and the interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Segments retransmitted (any cause).
    pub retransmitted_segments: u64,
    /// Retransmission timer expiries.
    pub rto_expiries: u64,
    /// Fast-retransmit / fast-recovery episodes entered on duplicate ACKs (no SACK).
    pub fast_recoveries: u64,
    /// Loss-recovery episodes driven by SACK information (RFC 6675).
    pub sack_recoveries: u64,
    /// Segments retransmitted because the SACK scoreboard said they were lost.
    pub sack_retransmits: u64,
    /// SACK-recovery retransmissions found lost (data sent after them was SACKed) and sent
    /// again without waiting for the retransmission timeout.
    pub lost_retransmissions: u64,
    /// SACK blocks received from peers.
    pub sack_blocks_received: u64,
    /// SACK blocks sent to peers.
    pub sack_blocks_sent: u64,
    /// D-SACK blocks received (RFC 2883: the peer got a segment twice).
    pub dsack_blocks_received: u64,
    /// Fast / SACK recovery episodes found spurious (D-SACK or Eifel timestamps) and undone.
    pub undos_recovery: u64,
    /// Retransmission timeouts found spurious (D-SACK or Eifel timestamps) and undone.
    pub undos_rto: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// RST segments sent.
    pub resets_sent: u64,
    /// RST segments accepted from peers.
    pub resets_received: u64,
    /// SYN cookies sent.
    pub cookies_sent: u64,
    /// SYN cookies validated (connections created from a cookie).
    pub cookies_validated: u64,
    /// Zero-window probes sent.
    pub window_probes: u64,
    /// Keepalive probes sent.
    pub keepalive_probes: u64,
    /// Connections dropped because keepalive or retransmission limits ran out.
    pub timeouts: u64,
    /// Out-of-order segments queued for reassembly.
    pub ooo_segments: u64,
    /// Active opens (connect).
    pub active_opens: u64,
    /// Passive opens (accepted from a listener).
    pub passive_opens: u64,
    /// Delayed ACKs sent when their timer fired.
    pub delayed_acks: u64,
}

/// All of the stack's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StackStats {
    /// Ethernet frames received / sent.
    pub eth_rx: PacketCount,
    /// Ethernet frames sent.
    pub eth_tx: PacketCount,
    /// ARP packets received.
    pub arp_rx: PacketCount,
    /// ARP packets sent.
    pub arp_tx: PacketCount,
    /// IPv4 packets received.
    pub ipv4_rx: PacketCount,
    /// IPv4 packets sent.
    pub ipv4_tx: PacketCount,
    /// ICMP messages received.
    pub icmp_rx: PacketCount,
    /// ICMP messages sent.
    pub icmp_tx: PacketCount,
    /// UDP datagrams received.
    pub udp_rx: PacketCount,
    /// UDP datagrams sent.
    pub udp_tx: PacketCount,
    /// TCP segments received.
    pub tcp_rx: PacketCount,
    /// TCP segments sent.
    pub tcp_tx: PacketCount,
    /// Drops by reason, indexed like [`DropReason::ALL`].
    pub drops: [u64; DropReason::ALL.len()],
    /// Resolved ARP entries forgotten because a connection through that next hop hit its
    /// retransmission timeout (re-resolved on the next frame).
    pub arp_reprobes: u64,
    /// TCP details.
    pub tcp: TcpStats,
}

impl TcpStats {
    /// Add another set of counters to this one (e.g. summing ports or threads). Destructured so
    /// that a new counter cannot be forgotten here.
    pub fn accumulate(&mut self, other: &TcpStats) {
        let TcpStats {
            retransmitted_segments,
            rto_expiries,
            fast_recoveries,
            sack_recoveries,
            sack_retransmits,
            lost_retransmissions,
            sack_blocks_received,
            sack_blocks_sent,
            dsack_blocks_received,
            undos_recovery,
            undos_rto,
            challenge_acks,
            resets_sent,
            resets_received,
            cookies_sent,
            cookies_validated,
            window_probes,
            keepalive_probes,
            timeouts,
            ooo_segments,
            active_opens,
            passive_opens,
            delayed_acks,
        } = other;
        self.retransmitted_segments += retransmitted_segments;
        self.rto_expiries += rto_expiries;
        self.fast_recoveries += fast_recoveries;
        self.sack_recoveries += sack_recoveries;
        self.sack_retransmits += sack_retransmits;
        self.lost_retransmissions += lost_retransmissions;
        self.sack_blocks_received += sack_blocks_received;
        self.sack_blocks_sent += sack_blocks_sent;
        self.dsack_blocks_received += dsack_blocks_received;
        self.undos_recovery += undos_recovery;
        self.undos_rto += undos_rto;
        self.challenge_acks += challenge_acks;
        self.resets_sent += resets_sent;
        self.resets_received += resets_received;
        self.cookies_sent += cookies_sent;
        self.cookies_validated += cookies_validated;
        self.window_probes += window_probes;
        self.keepalive_probes += keepalive_probes;
        self.timeouts += timeouts;
        self.ooo_segments += ooo_segments;
        self.active_opens += active_opens;
        self.passive_opens += passive_opens;
        self.delayed_acks += delayed_acks;
    }
}

impl StackStats {
    /// Add another set of counters to this one (e.g. summing ports or threads). Destructured so
    /// that a new counter cannot be forgotten here.
    pub fn accumulate(&mut self, other: &StackStats) {
        let StackStats {
            eth_rx,
            eth_tx,
            arp_rx,
            arp_tx,
            ipv4_rx,
            ipv4_tx,
            icmp_rx,
            icmp_tx,
            udp_rx,
            udp_tx,
            tcp_rx,
            tcp_tx,
            drops,
            arp_reprobes,
            tcp,
        } = other;
        self.eth_rx.accumulate(eth_rx);
        self.eth_tx.accumulate(eth_tx);
        self.arp_rx.accumulate(arp_rx);
        self.arp_tx.accumulate(arp_tx);
        self.ipv4_rx.accumulate(ipv4_rx);
        self.ipv4_tx.accumulate(ipv4_tx);
        self.icmp_rx.accumulate(icmp_rx);
        self.icmp_tx.accumulate(icmp_tx);
        self.udp_rx.accumulate(udp_rx);
        self.udp_tx.accumulate(udp_tx);
        self.tcp_rx.accumulate(tcp_rx);
        self.tcp_tx.accumulate(tcp_tx);
        for (a, b) in self.drops.iter_mut().zip(drops.iter()) {
            *a += b;
        }
        self.arp_reprobes += arp_reprobes;
        self.tcp.accumulate(tcp);
    }

    /// Count one drop.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// Drops counted for `reason`.
    pub fn drops_for(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulate_adds_every_counter() {
        let mut a = StackStats::default();
        a.eth_rx.add(100);
        a.drop(DropReason::Paws);
        a.tcp.delayed_acks = 3;
        a.tcp.retransmitted_segments = 2;
        a.arp_reprobes = 5;
        let b = a.clone();
        a.accumulate(&b);
        assert_eq!(
            a.eth_rx,
            PacketCount {
                packets: 2,
                bytes: 200
            }
        );
        assert_eq!(a.drops_for(DropReason::Paws), 2);
        assert_eq!((a.tcp.delayed_acks, a.tcp.retransmitted_segments), (6, 4));
        assert_eq!(a.arp_reprobes, 10);
    }
}
