//! Generic segmentation offload for ports that can hand the kernel (or a NIC) one large TCP
//! segment plus a `virtio_net_hdr` instead of many MSS-sized frames.
//!
//! The stack emits MSS-sized frames. When a flush finds consecutive frames that are in-sequence
//! data segments of one connection with identical headers, the port sends them as one message:
//! a `virtio_net_hdr` asking for TCPv4 segmentation at the first segment's payload size, the
//! first frame's headers patched for the total length, then every frame's payload, gathered in
//! place (no copy here). The kernel cuts it back into the same segments (sequence numbers, IP
//! lengths and ids, checksums) on its way to the device, at a fraction of the per-frame cost of
//! the packet socket's send path. This is the TSO that Linux's own TCP uses, done one layer
//! lower so that the stack, the TX admission and the counters still see every segment.
//!
//! A run only merges what the segmentation reproduces exactly: IPv4 without options constraints
//! beyond a matching header, TCP with only ACK (and PSH on the last segment), the same options
//! bytes (so equal timestamps), contiguous sequence numbers, every segment but the last exactly
//! the first one's size, and at most 64 KiB of IP datagram. Everything else is sent as it is.

use saps_stack::wire::checksum::{checksum, fold, sum};

/// Bytes of a `struct virtio_net_hdr` (legacy layout, without `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

/// Largest Ethernet + IPv4 + TCP header a merged run may have (60-byte IP and TCP headers).
pub const MAX_HEADERS: usize = 14 + 60 + 60;

/// Room for a run's `virtio_net_hdr` followed by its patched headers.
pub type RunHeader = [u8; VNET_HDR_LEN + MAX_HEADERS];

/// A `virtio_net_hdr` that asks for nothing: the frame goes out as it is.
pub const PLAIN_VNET_HDR: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];

/// Largest IPv4 datagram a merged run may describe.
const MAX_IP_LEN: usize = 65_535;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum field holds the pseudo-header sum; complete it.
const VNET_F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
const VNET_GSO_TCPV4: u8 = 1;

const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;

/// What a frame is, as far as merging is concerned.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Offset of the TCP header in the frame.
    l4: usize,
    /// Ethernet + IPv4 + TCP header bytes.
    headers: usize,
    /// TCP payload bytes.
    payload: usize,
    /// Sequence number of the first payload byte.
    seq: u32,
    /// TCP flags byte.
    flags: u8,
}

impl Segment {
    /// Parses `frame` as a mergeable TCP data segment: IPv4 in untagged Ethernet, not a
    /// fragment, no padding after the datagram, payload present, flags ACK or ACK|PSH only.
    pub fn parse(frame: &[u8]) -> Option<Segment> {
        if frame.len() < 14 + 20 + 20 || frame[12..14] != [0x08, 0x00] {
            return None;
        }
        let ip = &frame[14..];
        if ip[0] >> 4 != 4 || ip[9] != 6 {
            return None;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        // More-fragments flag or a fragment offset: never merge fragments.
        if ihl < 20 || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 || total != ip.len() {
            return None;
        }
        let l4 = 14 + ihl;
        let tcp = frame.get(l4..)?;
        if tcp.len() < 20 {
            return None;
        }
        let thl = usize::from(tcp[12] >> 4) * 4;
        let flags = tcp[13];
        if thl < 20 || thl > tcp.len() || flags & !(TCP_ACK | TCP_PSH) != 0 || flags & TCP_ACK == 0
        {
            return None;
        }
        let payload = tcp.len() - thl;
        if payload == 0 {
            return None;
        }
        Some(Segment {
            l4,
            headers: l4 + thl,
            payload,
            seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
            flags,
        })
    }
}

/// A run of frames being merged: the first frame's shape and where the run stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Run {
    first: Segment,
    last: Segment,
    /// Frames in the run.
    pub frames: usize,
    /// Payload bytes in the run.
    pub payload: usize,
}

impl Run {
    /// Starts a run at a parsed frame.
    pub fn start(first: Segment) -> Run {
        Run {
            first,
            last: first,
            frames: 1,
            payload: first.payload,
        }
    }

    /// Adds `next` (the frame after the run's last one) if the kernel's segmentation of the
    /// merged run would give back exactly these frames. `first_frame` is the run's first frame.
    pub fn try_append(&mut self, first_frame: &[u8], next_frame: &[u8], next: Segment) -> bool {
        let (f, last) = (self.first, self.last);
        let fits = f.headers + self.payload + next.payload - 14 <= MAX_IP_LEN;
        let shaped = next.l4 == f.l4
            && next.headers == f.headers
            && last.payload == f.payload
            && last.flags & TCP_PSH == 0
            && next.payload <= f.payload
            && next.seq == last.seq.wrapping_add(last.payload as u32)
        // Segmentation numbers the IP ids first + i: the frames must already be numbered so.
        && ip_id(next_frame) == ip_id(first_frame).wrapping_add(self.frames as u16)
            && (next.flags | TCP_PSH) == (f.flags | TCP_PSH);
        if !(fits && shaped && same_headers(first_frame, next_frame, f.l4, f.headers)) {
            return false;
        }
        self.last = next;
        self.frames += 1;
        self.payload += next.payload;
        true
    }

    /// Payload of frame `frame` (one of the run's frames) to gather after the header.
    pub fn payload_of<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame.get(self.first.headers..).unwrap_or(&[])
    }

    /// Writes the run's `virtio_net_hdr` and patched headers (from `first_frame`) into `out`;
    /// returns the bytes written.
    pub fn write_header(&self, first_frame: &[u8], out: &mut RunHeader) -> usize {
        let f = self.first;
        let (vnet, hdr) = out.split_at_mut(VNET_HDR_LEN);
        vnet[0] = VNET_F_NEEDS_CSUM;
        vnet[1] = VNET_GSO_TCPV4;
        // Legacy virtio byte order is the host's.
        vnet[2..4].copy_from_slice(&(f.headers as u16).to_ne_bytes());
        vnet[4..6].copy_from_slice(&(f.payload as u16).to_ne_bytes());
        vnet[6..8].copy_from_slice(&(f.l4 as u16).to_ne_bytes());
        vnet[8..10].copy_from_slice(&16u16.to_ne_bytes());
        let hdr = &mut hdr[..f.headers];
        hdr.copy_from_slice(&first_frame[..f.headers]);
        let ip_len = f.headers - 14 + self.payload;
        hdr[16..18].copy_from_slice(&(ip_len as u16).to_be_bytes());
        // The IP checksum is rewritten for every segment by the segmentation; keep it valid
        // for the merged header anyway.
        hdr[24..26].fill(0);
        let ip_sum = checksum(&hdr[14..f.l4]);
        hdr[24..26].copy_from_slice(&ip_sum.to_be_bytes());
        // PSH (if any) belongs to the last segment, which is where segmentation puts it.
        hdr[f.l4 + 13] = self.last.flags;
        // NEEDS_CSUM convention: the field holds the folded, uncomplemented pseudo-header sum
        // over the whole TCP length; segmentation adjusts it per segment and completes it.
        let tcp_len = (f.headers - f.l4 + self.payload) as u32;
        let pseudo = sum(&hdr[26..34], 6 + tcp_len);
        hdr[f.l4 + 16..f.l4 + 18].copy_from_slice(&fold(pseudo).to_be_bytes());
        VNET_HDR_LEN + f.headers
    }
}

/// Completes the checksums of a frame the stack built without them (it leaves checksums to
/// "hardware" on a gso port): the IPv4 header checksum here; TCP and UDP by asking the kernel
/// (`NEEDS_CSUM`, the field set to the pseudo-header sum); ICMP here. Returns the frame's
/// `virtio_net_hdr`. Frames that are not IPv4 (ARP) or are too short to parse go as they are.
pub fn complete_checksums(frame: &mut [u8]) -> [u8; VNET_HDR_LEN] {
    let mut vnet = PLAIN_VNET_HDR;
    let l3 = match frame.get(12..14) {
        Some([0x08, 0x00]) => 14,
        Some([0x81, 0x00]) if frame.get(16..18) == Some(&[0x08, 0x00]) => 18,
        _ => return vnet,
    };
    let Some(&vihl) = frame.get(l3) else {
        return vnet;
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < 20 || frame.len() < l3 + ihl {
        return vnet;
    }
    let total = usize::from(u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]));
    let fragment = u16::from_be_bytes([frame[l3 + 6], frame[l3 + 7]]) & 0x3fff != 0;
    if total < ihl || frame.len() < l3 + total {
        return vnet;
    }
    frame[l3 + 10..l3 + 12].fill(0);
    let ip_sum = checksum(&frame[l3..l3 + ihl]);
    frame[l3 + 10..l3 + 12].copy_from_slice(&ip_sum.to_be_bytes());
    let l4 = l3 + ihl;
    let l4_len = total - ihl;
    if fragment {
        // A fragment's transport checksum covers the whole datagram: not ours to complete.
        return vnet;
    }
    let field = match frame[l3 + 9] {
        6 if l4_len >= 20 => 16,
        17 if l4_len >= 8 => 6,
        1 if l4_len >= 4 => {
            frame[l4 + 2..l4 + 4].fill(0);
            let icmp = checksum(&frame[l4..l4 + l4_len]);
            frame[l4 + 2..l4 + 4].copy_from_slice(&icmp.to_be_bytes());
            return vnet;
        }
        _ => return vnet,
    };
    let pseudo = sum(
        &frame[l3 + 12..l3 + 20],
        u32::from(frame[l3 + 9]) + l4_len as u32,
    );
    frame[l4 + field..l4 + field + 2].copy_from_slice(&fold(pseudo).to_be_bytes());
    vnet[0] = VNET_F_NEEDS_CSUM;
    let hdr = if field == 16 {
        l4 + usize::from(frame[l4 + 12] >> 4) * 4
    } else {
        l4 + 8
    };
    vnet[2..4].copy_from_slice(&(hdr.min(l3 + total) as u16).to_ne_bytes());
    vnet[6..8].copy_from_slice(&(l4 as u16).to_ne_bytes());
    vnet[8..10].copy_from_slice(&(field as u16).to_ne_bytes());
    vnet
}

/// True if `a` and `b` have the same headers except for what segmentation rewrites: IP total
/// length, id and checksum; TCP sequence number, PSH and checksum.
fn same_headers(a: &[u8], b: &[u8], l4: usize, headers: usize) -> bool {
    a[..16] == b[..16]
        && a[20..24] == b[20..24]
        && a[26..l4 + 4] == b[26..l4 + 4]
        && a[l4 + 8..l4 + 13] == b[l4 + 8..l4 + 13]
        && a[l4 + 14..l4 + 16] == b[l4 + 14..l4 + 16]
        && a[l4 + 18..headers] == b[l4 + 18..headers]
}

/// The IPv4 identification of an untagged frame (checked to be IPv4 by [`Segment::parse`]).
fn ip_id(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[18], frame[19]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP_FIN: u8 = 0x01;
    const TCP_SYN: u8 = 0x02;
    const TCP_RST: u8 = 0x04;

    /// A TCP/IPv4 frame with correct checksums, a timestamp option and `payload` bytes.
    fn frame(seq: u32, ip_id: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let opts: [u8; 12] = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];
        let thl = 20 + opts.len();
        let mut f = vec![0u8; 14 + 20 + thl];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip_len = (20 + thl + payload.len()) as u16;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&ip_len.to_be_bytes());
        f[18..20].copy_from_slice(&ip_id.to_be_bytes());
        f[20] = 0x40; // DF
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 0, 0, 2]);
        f[30..34].copy_from_slice(&[10, 0, 0, 1]);
        let t = 34;
        f[t..t + 2].copy_from_slice(&19u16.to_be_bytes());
        f[t + 2..t + 4].copy_from_slice(&40000u16.to_be_bytes());
        f[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
        f[t + 8..t + 12].copy_from_slice(&77u32.to_be_bytes());
        f[t + 12] = ((thl / 4) as u8) << 4;
        f[t + 13] = flags;
        f[t + 14..t + 16].copy_from_slice(&5000u16.to_be_bytes());
        f[t + 20..t + thl].copy_from_slice(&opts);
        f.extend_from_slice(payload);
        fix_checksums(&mut f);
        f
    }

    fn fix_checksums(f: &mut [u8]) {
        f[24..26].fill(0);
        let ip = checksum(&f[14..34]);
        f[24..26].copy_from_slice(&ip.to_be_bytes());
        f[34 + 16..34 + 18].fill(0);
        let tcp_len = (f.len() - 34) as u32;
        let total = sum(&f[34..], sum(&f[26..34], 6 + tcp_len));
        f[34 + 16..34 + 18].copy_from_slice(&(!fold(total)).to_be_bytes());
    }

    /// What Linux's TCPv4 segmentation makes of a merged message: the header repeated with
    /// advancing sequence numbers and IP ids, PSH only on the last segment, lengths and both
    /// checksums per segment. Checks the partial checksum convention on the way.
    fn segment(msg: &[u8]) -> Vec<Vec<u8>> {
        let (vnet, pkt) = msg.split_at(VNET_HDR_LEN);
        assert_eq!((vnet[0], vnet[1]), (VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4));
        let hdr_len = usize::from(u16::from_ne_bytes([vnet[2], vnet[3]]));
        let mss = usize::from(u16::from_ne_bytes([vnet[4], vnet[5]]));
        let l4 = usize::from(u16::from_ne_bytes([vnet[6], vnet[7]]));
        assert_eq!(u16::from_ne_bytes([vnet[8], vnet[9]]), 16);
        let (hdr, data) = pkt.split_at(hdr_len);
        // The partial checksum is the pseudo-header sum over the whole TCP length.
        let tcp_len = (hdr_len - l4 + data.len()) as u32;
        let want = fold(sum(&hdr[26..34], 6 + tcp_len));
        assert_eq!(u16::from_be_bytes([hdr[l4 + 16], hdr[l4 + 17]]), want);
        let seq0 = u32::from_be_bytes([hdr[l4 + 4], hdr[l4 + 5], hdr[l4 + 6], hdr[l4 + 7]]);
        let id0 = u16::from_be_bytes([hdr[18], hdr[19]]);
        let chunks: Vec<&[u8]> = data.chunks(mss).collect();
        let n = chunks.len();
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut s = hdr.to_vec();
                s.extend_from_slice(c);
                let ip_len = (s.len() - 14) as u16;
                s[16..18].copy_from_slice(&ip_len.to_be_bytes());
                s[18..20].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
                let seq = seq0.wrapping_add((i * mss) as u32);
                s[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
                if i + 1 < n {
                    s[l4 + 13] &= !(TCP_PSH | TCP_FIN);
                }
                fix_checksums(&mut s);
                s
            })
            .collect()
    }

    /// Plans `frames` like a flush does and returns the messages.
    fn plan(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < frames.len() {
            let Some(seg) = Segment::parse(&frames[i]) else {
                out.push([&PLAIN_VNET_HDR[..], &frames[i]].concat());
                i += 1;
                continue;
            };
            let mut run = Run::start(seg);
            while let Some(next) = frames.get(i + run.frames) {
                match Segment::parse(next) {
                    Some(s) if run.try_append(&frames[i], next, s) => {}
                    _ => break,
                }
            }
            if run.frames == 1 {
                out.push([&PLAIN_VNET_HDR[..], &frames[i]].concat());
            } else {
                let mut h = [0u8; VNET_HDR_LEN + MAX_HEADERS];
                let n = run.write_header(&frames[i], &mut h);
                let mut m = h[..n].to_vec();
                for f in &frames[i..i + run.frames] {
                    m.extend_from_slice(run.payload_of(f));
                }
                out.push(m);
            }
            i += run.frames;
        }
        out
    }

    fn bulk(n: usize, mss: usize, seq0: u32) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let payload: Vec<u8> = (0..mss).map(|b| (b * 7 + i) as u8).collect();
                let seq = seq0.wrapping_add((i * mss) as u32);
                frame(seq, 100 + i as u16, TCP_ACK, &payload)
            })
            .collect()
    }

    #[test]
    fn a_bulk_burst_becomes_one_message_that_segments_back_byte_exact() {
        let mut frames = bulk(10, 1448, 0xffff_f000); // sequence numbers wrap inside the run
        let last = frames.len() - 1;
        frames[last] = frame(
            0xffff_f000u32.wrapping_add(9 * 1448),
            109,
            TCP_ACK | TCP_PSH,
            &[42; 300],
        );
        let msgs = plan(&frames);
        assert_eq!(msgs.len(), 1);
        assert_eq!(segment(&msgs[0]), frames);
    }

    #[test]
    fn runs_stop_at_64k_and_at_anything_segmentation_would_not_reproduce() {
        let frames = bulk(60, 1448, 1);
        let msgs = plan(&frames);
        // 45 * 1448 + 52 header bytes fit in 65535; 46 do not.
        assert_eq!(msgs.len(), 2);
        let back: Vec<Vec<u8>> = msgs.iter().flat_map(|m| segment(m)).collect();
        assert_eq!(back, frames);

        // A gap in sequence numbers, a short segment in the middle, a PSH in the middle, a
        // different timestamp, and a pure ACK each end a run.
        let base = bulk(3, 1000, 500);
        let mut gap = base.clone();
        gap[1] = frame(500 + 1001, 101, TCP_ACK, &[1; 1000]);
        let mut short = base.clone();
        short[1] = frame(1500, 101, TCP_ACK, &[1; 999]);
        let mut psh = base.clone();
        psh[0] = frame(500, 100, TCP_ACK | TCP_PSH, &[1; 1000]);
        let mut ts = base.clone();
        ts[1][34 + 27] ^= 1;
        fix_checksums(&mut ts[1]);
        let mut ack = base.clone();
        ack[1] = frame(1500, 101, TCP_ACK, &[]);
        let mut id = base.clone();
        id[1] = frame(1500, 7, TCP_ACK, &[1; 1000]);
        for (name, frames, want) in [
            ("gap", gap, 3),
            ("short", short, 2),
            ("psh", psh, 2),
            ("ts", ts, 3),
            ("ack", ack, 3),
            ("id", id, 3),
        ] {
            let msgs = plan(&frames);
            assert_eq!(msgs.len(), want, "{name}");
            let mut back = Vec::new();
            for m in &msgs {
                if m[1] == VNET_GSO_TCPV4 {
                    back.extend(segment(m));
                } else {
                    back.push(m[VNET_HDR_LEN..].to_vec());
                }
            }
            assert_eq!(back, frames, "{name}");
        }
    }

    /// What the kernel does with a `NEEDS_CSUM` frame: sum from `csum_start` to the end with
    /// the field as it is (the pseudo-header sum) and store the complement.
    fn kernel_completes(frame: &mut [u8], vnet: &[u8; VNET_HDR_LEN]) {
        if vnet[0] & VNET_F_NEEDS_CSUM == 0 {
            return;
        }
        let start = usize::from(u16::from_ne_bytes([vnet[6], vnet[7]]));
        let field = start + usize::from(u16::from_ne_bytes([vnet[8], vnet[9]]));
        let done = checksum(&frame[start..]);
        frame[field..field + 2].copy_from_slice(&done.to_be_bytes());
    }

    #[test]
    fn checksums_left_to_hardware_are_completed_for_tcp_udp_and_icmp() {
        let tcp = frame(7, 3, TCP_ACK | TCP_PSH, b"hello, world");
        // UDP and ICMP echo reply built from the TCP frame's Ethernet+IPv4 header.
        let mut udp = tcp[..34].to_vec();
        udp[23] = 17;
        udp.extend_from_slice(&[0x00, 0x07, 0x9c, 0x40, 0x00, 0x0d, 0, 0, 1, 2, 3, 4, 5]);
        let udp_ip_len = (udp.len() - 14) as u16;
        udp[16..18].copy_from_slice(&udp_ip_len.to_be_bytes());
        let mut icmp = tcp[..34].to_vec();
        icmp[23] = 1;
        icmp.extend_from_slice(&[0, 0, 0, 0, 0x12, 0x34, 0, 1, 9, 9, 9]);
        let icmp_ip_len = (icmp.len() - 14) as u16;
        icmp[16..18].copy_from_slice(&icmp_ip_len.to_be_bytes());
        for (name, mut want, l4_check) in [
            ("tcp", tcp, 34 + 16),
            ("udp", udp, 34 + 6),
            ("icmp", icmp, 34 + 2),
        ] {
            // Correct reference checksums.
            want[24..26].fill(0);
            let ip = checksum(&want[14..34]);
            want[24..26].copy_from_slice(&ip.to_be_bytes());
            want[l4_check..l4_check + 2].fill(0);
            let proto = u32::from(want[23]);
            let l4_len = (want.len() - 34) as u32;
            let pseudo = if proto == 1 {
                0
            } else {
                sum(&want[26..34], proto + l4_len)
            };
            let l4_sum = !fold(sum(&want[34..], pseudo));
            want[l4_check..l4_check + 2].copy_from_slice(&l4_sum.to_be_bytes());
            // As the stack leaves it with checksums offloaded: both fields zero.
            let mut got = want.clone();
            got[24..26].fill(0);
            got[l4_check..l4_check + 2].fill(0);
            let vnet = complete_checksums(&mut got);
            kernel_completes(&mut got, &vnet);
            assert_eq!(got, want, "{name}");
        }
        // ARP and truncated frames pass untouched.
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(complete_checksums(&mut arp), PLAIN_VNET_HDR);
        let mut short = frame(1, 1, TCP_ACK, &[1; 10]);
        short.truncate(30);
        assert_eq!(complete_checksums(&mut short), PLAIN_VNET_HDR);
        // A fragment gets its IPv4 checksum, and its payload is left alone.
        let mut frag = frame(1, 1, TCP_ACK, &[1; 10]);
        frag[20] = 0x20; // more fragments
        let payload = frag[34..].to_vec();
        assert_eq!(complete_checksums(&mut frag), PLAIN_VNET_HDR);
        assert_eq!(frag[34..], payload[..]);
        assert_eq!(fold(sum(&frag[14..34], 0)), 0xffff);
    }

    #[test]
    fn only_plain_tcp_data_segments_merge() {
        let good = frame(1, 1, TCP_ACK, &[0; 100]);
        assert!(Segment::parse(&good).is_some());
        let mut syn = good.clone();
        syn[34 + 13] |= TCP_SYN;
        let mut fin = good.clone();
        fin[34 + 13] |= TCP_FIN;
        let mut rst = good.clone();
        rst[34 + 13] = TCP_RST | TCP_ACK;
        let mut frag = good.clone();
        frag[20] |= 0x20; // more fragments
        let mut vlan = good.clone();
        vlan[12..14].copy_from_slice(&[0x81, 0x00]);
        let mut udp = good.clone();
        udp[23] = 17;
        let mut padded = good.clone();
        padded.push(0);
        for (name, f) in [
            ("syn", syn),
            ("fin", fin),
            ("rst", rst),
            ("frag", frag),
            ("vlan", vlan),
            ("udp", udp),
            ("padded", padded),
            ("short", good[..40].to_vec()),
        ] {
            assert_eq!(Segment::parse(&f), None, "{name}");
        }
    }
}
