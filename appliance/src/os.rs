//! The one OS-interface module of the appliance crate: thin, safe wrappers over the libc calls the
//! port backends need (packet sockets, their mmap'ed rings, interface ioctls, TUN/TAP, network
//! namespaces). Every `unsafe` block of the crate lives here and carries a `// SAFETY:` line.
//!
//! Errors are `io::Error`s with the failing call (and the interface name where there is one) in
//! the message, because they surface at start-up to an operator, never on the per-packet path.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// `SOL_PACKET` socket option level.
pub const SOL_PACKET: i32 = 263;
/// `PACKET_ADD_MEMBERSHIP` (linux/if_packet.h).
pub const PACKET_ADD_MEMBERSHIP: i32 = 1;
/// `PACKET_RX_RING`.
pub const PACKET_RX_RING: i32 = 5;
/// `PACKET_STATISTICS`.
pub const PACKET_STATISTICS: i32 = 6;
/// `PACKET_VERSION`.
pub const PACKET_VERSION: i32 = 10;
/// `PACKET_TX_RING`.
pub const PACKET_TX_RING: i32 = 13;
/// `PACKET_LOSS`: skip malformed TX frames instead of stalling the ring on them.
pub const PACKET_LOSS: i32 = 14;
/// `PACKET_VNET_HDR`: every frame sent starts with a `struct virtio_net_hdr`.
pub const PACKET_VNET_HDR: i32 = 15;
/// `PACKET_QDISC_BYPASS`.
pub const PACKET_QDISC_BYPASS: i32 = 20;
/// `PACKET_IGNORE_OUTGOING` (Linux 4.20+).
pub const PACKET_IGNORE_OUTGOING: i32 = 23;
/// `TPACKET_V2` value for `PACKET_VERSION`.
pub const TPACKET_V2: i32 = 1;
/// `PACKET_MR_PROMISC` membership type.
pub const PACKET_MR_PROMISC: u16 = 1;
/// `ETH_P_ALL`: every protocol.
pub const ETH_P_ALL: u16 = 0x0003;
/// `sll_pkttype` of frames this host sent (seen looped back on packet sockets).
pub const PACKET_OUTGOING: u8 = 4;

/// RX ring frame status: owned by the kernel.
pub const TP_STATUS_KERNEL: u32 = 0;
/// RX ring frame status bit: owned by user space.
pub const TP_STATUS_USER: u32 = 1;
/// RX status bit: the VLAN tag was stripped into `tp_vlan_tci`.
pub const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
/// RX status bit: `tp_vlan_tpid` is valid.
pub const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
/// TX ring frame status: free for user space.
pub const TP_STATUS_AVAILABLE: u32 = 0;
/// TX ring frame status: written, asks the kernel to send it.
pub const TP_STATUS_SEND_REQUEST: u32 = 1;
/// TX ring frame status: the kernel is sending it.
pub const TP_STATUS_SENDING: u32 = 2;
/// TX ring frame status: the kernel rejected the frame.
pub const TP_STATUS_WRONG_FORMAT: u32 = 4;

/// Size of `struct tpacket2_hdr`.
pub const TPACKET2_HDR_SIZE: usize = 32;
/// `TPACKET2_HDRLEN`: header plus `sockaddr_ll`, the kernel's `tp_hdrlen` for V2.
pub const TPACKET2_HDRLEN: usize = 52;
/// Offset of the frame data in a TX ring frame (`tp_hdrlen - sizeof(sockaddr_ll)`).
pub const TPACKET2_TX_DATA_OFFSET: usize = TPACKET2_HDRLEN - 20;
/// Offset of the `sockaddr_ll` in a V2 ring frame (`TPACKET_ALIGN(sizeof(tpacket2_hdr))`).
pub const TPACKET2_SLL_OFFSET: usize = 32;
/// Offset of `sll_pkttype` in a V2 ring frame.
pub const TPACKET2_PKTTYPE_OFFSET: usize = TPACKET2_SLL_OFFSET + 10;

/// Interface flag `IFF_UP`.
pub const IFF_UP: u16 = 0x1;
/// Interface flag `IFF_RUNNING` (carrier present).
pub const IFF_RUNNING: u16 = 0x40;

const SIOCGIFFLAGS: u64 = 0x8913;
const SIOCSIFFLAGS: u64 = 0x8914;
const SIOCGIFMTU: u64 = 0x8921;
const SIOCGIFHWADDR: u64 = 0x8927;
const SIOCGIFINDEX: u64 = 0x8933;
const TUNSETIFF: u64 = 0x4004_54ca;
const IFF_TAP: u16 = 0x0002;
const IFF_NO_PI: u16 = 0x1000;

/// `struct tpacket_req`: ring geometry for `PACKET_RX_RING` / `PACKET_TX_RING`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TpacketReq {
    /// Bytes per block (multiple of the page size).
    pub block_size: u32,
    /// Number of blocks.
    pub block_nr: u32,
    /// Bytes per frame (multiple of 16).
    pub frame_size: u32,
    /// Number of frames (`block_nr * block_size / frame_size`).
    pub frame_nr: u32,
}

impl TpacketReq {
    /// Total bytes of the ring.
    pub fn bytes(&self) -> usize {
        self.block_size as usize * self.block_nr as usize
    }
}

/// `struct ifreq` with the union as raw bytes (40 bytes on 64-bit Linux).
#[repr(C)]
#[derive(Copy, Clone)]
struct IfReq {
    name: [u8; 16],
    data: [u8; 24],
    _align: [u64; 0],
}

impl IfReq {
    fn new(ifname: &str) -> io::Result<IfReq> {
        let bytes = ifname.as_bytes();
        if bytes.is_empty() || bytes.len() > 15 || bytes.contains(&0) || bytes.contains(&b'/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid interface name {ifname:?}: 1 to 15 bytes, no '/' or NUL"),
            ));
        }
        let mut req = IfReq {
            name: [0; 16],
            data: [0; 24],
            _align: [],
        };
        req.name[..bytes.len()].copy_from_slice(bytes);
        Ok(req)
    }
}

fn last_err(what: &str, ifname: &str) -> io::Error {
    let e = io::Error::last_os_error();
    let hint = match e.raw_os_error() {
        Some(libc::ENODEV) | Some(libc::ENXIO) => " (no such interface)",
        Some(libc::EPERM) | Some(libc::EACCES) => " (needs root or CAP_NET_ADMIN/CAP_NET_RAW)",
        _ => "",
    };
    io::Error::new(
        e.kind(),
        format!("{what} on interface {ifname:?}: {e}{hint}"),
    )
}

/// Socket for interface ioctls. Ioctls act in the network namespace the socket was created in,
/// so a port keeps one from its creation instead of opening one per call.
pub fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call, no pointers; the result is checked before it is wrapped.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last_err("socket(AF_INET, SOCK_DGRAM)", "-"));
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq_ioctl(fd: RawFd, req: u64, ifr: &mut IfReq, what: &str, ifname: &str) -> io::Result<()> {
    // SAFETY: `ifr` is a valid, exclusively borrowed 40-byte `struct ifreq` for the whole call;
    // the listed requests read and write only within it.
    let rc = unsafe { libc::ioctl(fd, req as _, ifr as *mut IfReq) };
    if rc < 0 {
        return Err(last_err(what, ifname));
    }
    Ok(())
}

/// Interface index of `ifname` (SIOCGIFINDEX).
pub fn if_index(ctl: &OwnedFd, ifname: &str) -> io::Result<i32> {
    let mut ifr = IfReq::new(ifname)?;
    ifreq_ioctl(
        ctl.as_raw_fd(),
        SIOCGIFINDEX,
        &mut ifr,
        "SIOCGIFINDEX",
        ifname,
    )?;
    Ok(i32::from_ne_bytes([
        ifr.data[0],
        ifr.data[1],
        ifr.data[2],
        ifr.data[3],
    ]))
}

/// Hardware (MAC) address of `ifname` (SIOCGIFHWADDR).
pub fn if_hwaddr(ctl: &OwnedFd, ifname: &str) -> io::Result<[u8; 6]> {
    let mut ifr = IfReq::new(ifname)?;
    ifreq_ioctl(
        ctl.as_raw_fd(),
        SIOCGIFHWADDR,
        &mut ifr,
        "SIOCGIFHWADDR",
        ifname,
    )?;
    let mut mac = [0u8; 6];
    // sockaddr: 2 bytes family, then the address.
    mac.copy_from_slice(&ifr.data[2..8]);
    Ok(mac)
}

/// MTU of `ifname` (SIOCGIFMTU).
pub fn if_mtu(ctl: &OwnedFd, ifname: &str) -> io::Result<usize> {
    let mut ifr = IfReq::new(ifname)?;
    ifreq_ioctl(ctl.as_raw_fd(), SIOCGIFMTU, &mut ifr, "SIOCGIFMTU", ifname)?;
    let mtu = i32::from_ne_bytes([ifr.data[0], ifr.data[1], ifr.data[2], ifr.data[3]]);
    Ok(mtu.max(0) as usize)
}

/// Interface flags of `ifname` (SIOCGIFFLAGS).
pub fn if_flags(ctl: &OwnedFd, ifname: &str) -> io::Result<u16> {
    let mut ifr = IfReq::new(ifname)?;
    ifreq_ioctl(
        ctl.as_raw_fd(),
        SIOCGIFFLAGS,
        &mut ifr,
        "SIOCGIFFLAGS",
        ifname,
    )?;
    Ok(u16::from_ne_bytes([ifr.data[0], ifr.data[1]]))
}

/// Sets the interface flags of `ifname` (SIOCSIFFLAGS), e.g. to bring it up.
pub fn set_if_flags(ctl: &OwnedFd, ifname: &str, flags: u16) -> io::Result<()> {
    let mut ifr = IfReq::new(ifname)?;
    ifr.data[..2].copy_from_slice(&flags.to_ne_bytes());
    ifreq_ioctl(
        ctl.as_raw_fd(),
        SIOCSIFFLAGS,
        &mut ifr,
        "SIOCSIFFLAGS",
        ifname,
    )
}

/// Opens a non-blocking AF_PACKET SOCK_RAW socket that receives nothing until bound.
pub fn packet_socket(ifname: &str) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; protocol 0 so that no frame is queued before the rings exist.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(last_err("socket(AF_PACKET, SOCK_RAW)", ifname));
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt` with a plain-old-data value.
fn setsockopt_pod<T: Copy>(
    fd: &OwnedFd,
    level: i32,
    name: i32,
    val: &T,
    what: &str,
    ifname: &str,
) -> io::Result<()> {
    // SAFETY: `val` points to `size_of::<T>()` initialised bytes of a `Copy` (POD) value that
    // lives across the call; the kernel only reads them.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            val as *const T as *const c_void,
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(last_err(what, ifname));
    }
    Ok(())
}

/// Sets an integer `SOL_PACKET` option.
pub fn set_packet_opt(
    fd: &OwnedFd,
    name: i32,
    val: i32,
    what: &str,
    ifname: &str,
) -> io::Result<()> {
    setsockopt_pod(fd, SOL_PACKET, name, &val, what, ifname)
}

/// Configures `PACKET_RX_RING` or `PACKET_TX_RING`.
pub fn set_packet_ring(fd: &OwnedFd, which: i32, req: &TpacketReq, ifname: &str) -> io::Result<()> {
    let what = if which == PACKET_RX_RING {
        "setsockopt(PACKET_RX_RING)"
    } else {
        "setsockopt(PACKET_TX_RING)"
    };
    setsockopt_pod(fd, SOL_PACKET, which, req, what, ifname)
}

/// Adds promiscuous-mode membership for `ifindex` (undone by the kernel when the socket closes).
pub fn add_promisc(fd: &OwnedFd, ifindex: i32, ifname: &str) -> io::Result<()> {
    #[repr(C)]
    #[derive(Copy, Clone)]
    struct PacketMreq {
        ifindex: i32,
        kind: u16,
        alen: u16,
        address: [u8; 8],
    }
    let mreq = PacketMreq {
        ifindex,
        kind: PACKET_MR_PROMISC,
        alen: 0,
        address: [0; 8],
    };
    setsockopt_pod(
        fd,
        SOL_PACKET,
        PACKET_ADD_MEMBERSHIP,
        &mreq,
        "PACKET_ADD_MEMBERSHIP(PROMISC)",
        ifname,
    )
}

/// Binds a packet socket to `ifindex` for every protocol.
pub fn bind_packet(fd: &OwnedFd, ifindex: i32, ifname: &str) -> io::Result<()> {
    bind_packet_protocol(fd, ifindex, ETH_P_ALL, ifname)
}

/// Binds a packet socket to `ifindex` for transmitting only: protocol 0 receives nothing.
pub fn bind_packet_tx_only(fd: &OwnedFd, ifindex: i32, ifname: &str) -> io::Result<()> {
    bind_packet_protocol(fd, ifindex, 0, ifname)
}

fn bind_packet_protocol(fd: &OwnedFd, ifindex: i32, protocol: u16, ifname: &str) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { MaybeUninit::zeroed().assume_init() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a valid sockaddr_ll living across the call and the length matches it.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(last_err("bind(AF_PACKET)", ifname));
    }
    Ok(())
}

/// Reads and resets `PACKET_STATISTICS`: (packets received, packets dropped by the kernel).
pub fn packet_stats(fd: &OwnedFd) -> io::Result<(u32, u32)> {
    let mut st = [0u32; 2];
    let mut len = size_of::<[u32; 2]>() as libc::socklen_t;
    // SAFETY: `st` is a writable 8-byte `struct tpacket_stats` and `len` says so.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_PACKET,
            PACKET_STATISTICS,
            st.as_mut_ptr() as *mut c_void,
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st[0], st[1]))
}

/// Asks the kernel to transmit every `TP_STATUS_SEND_REQUEST` frame of the TX ring without
/// blocking (`send(fd, NULL, 0, MSG_DONTWAIT)`). Returns the bytes sent.
pub fn packet_tx_kick(fd: &OwnedFd) -> io::Result<usize> {
    // SAFETY: a NULL buffer of length 0 is what the TX ring protocol asks for; nothing is read
    // from user memory except the ring itself, which stays mapped while `fd` lives.
    let rc = unsafe { libc::send(fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// Most messages one [`send_gathered`] call passes to `sendmmsg(2)`.
pub const SEND_BATCH: usize = 32;

/// Sends up to [`SEND_BATCH`] messages with one `sendmmsg(2)` on a bound socket: message `i` is
/// the next `iov_counts[i]` slices of `iovs`, gathered. Returns how many messages the kernel
/// took (at least one), or the error of the first message when it took none.
pub fn send_gathered(
    fd: &OwnedFd,
    iovs: &[io::IoSlice<'_>],
    iov_counts: &[usize],
) -> io::Result<usize> {
    // SAFETY: mmsghdr is plain data; all-zero (no name, no control) is a valid value.
    let mut msgs: [libc::mmsghdr; SEND_BATCH] = unsafe { MaybeUninit::zeroed().assume_init() };
    let mut next = 0;
    let mut n = 0;
    for (msg, &count) in msgs.iter_mut().zip(iov_counts) {
        let Some(slices) = iovs.get(next..next + count) else {
            break;
        };
        // IoSlice is guaranteed ABI-compatible with iovec; the kernel only reads through it.
        msg.msg_hdr.msg_iov = slices.as_ptr() as *mut libc::iovec;
        msg.msg_hdr.msg_iovlen = count as _;
        next += count;
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: the first `n` headers point into `iovs`, whose slices borrow live memory for the
    // whole call; the kernel writes only each header's `msg_len`.
    let rc = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as u32,
            libc::MSG_DONTWAIT,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// Reads and clears the socket's pending error (`SO_ERROR`); `None` if there was none.
pub fn take_socket_error(fd: &OwnedFd) -> Option<io::Error> {
    let mut err: i32 = 0;
    let mut len = size_of::<i32>() as libc::socklen_t;
    // SAFETY: `err` is a writable int and `len` says so.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err as *mut i32 as *mut c_void,
            &mut len,
        )
    };
    (rc == 0 && err != 0).then(|| io::Error::from_raw_os_error(err))
}

/// Waits until `fd` is readable or `timeout_ms` passes; true if readable.
pub fn poll_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, exclusively borrowed for the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc > 0 && pfd.revents & libc::POLLIN != 0)
}

/// A shared mapping of a packet socket's rings.
///
/// Frames of the ring are shared with the kernel: the kernel writes only frames whose status says
/// it owns them, and user space may touch only the others. This type checks bounds and offers the
/// status word as an atomic; honouring the ownership protocol is the job of the caller
/// (`port::af_packet`), which reads or writes a frame's bytes only while it owns that frame.
pub struct RingMap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving it to another thread is fine.
unsafe impl Send for RingMap {}

impl RingMap {
    /// Maps `len` bytes of the rings of packet socket `fd` (RX ring first, then TX ring).
    pub fn map(fd: &OwnedFd, len: usize, ifname: &str) -> io::Result<RingMap> {
        // SAFETY: new shared mapping chosen by the kernel (addr NULL); the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        let p = if p == libc::MAP_FAILED {
            // MAP_LOCKED fails under a low RLIMIT_MEMLOCK; retry without it.
            // SAFETY: as above.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_POPULATE,
                    fd.as_raw_fd(),
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(last_err("mmap(packet rings)", ifname));
            }
            p
        } else {
            p
        };
        let ptr =
            NonNull::new(p as *mut u8).ok_or_else(|| last_err("mmap(packet rings)", ifname))?;
        Ok(RingMap { ptr, len })
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the mapping is empty (never for a mapped ring).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn status_word(&self, off: usize) -> Option<&AtomicU32> {
        if off & 3 != 0 || off.checked_add(4)? > self.len {
            return None;
        }
        // SAFETY: in bounds, 4-byte aligned (the mapping is page aligned and `off` is a multiple
        // of 4); the kernel accesses status words atomically, so an AtomicU32 view is sound.
        Some(unsafe { &*(self.ptr.as_ptr().add(off) as *const AtomicU32) })
    }

    /// Loads the `tp_status` word at byte offset `off` with acquire ordering (0 if out of bounds).
    pub fn load_status(&self, off: usize) -> u32 {
        self.status_word(off)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// Stores the `tp_status` word at byte offset `off` with release ordering, publishing every
    /// earlier write to the frame.
    pub fn store_status(&self, off: usize, v: u32) {
        if let Some(w) = self.status_word(off) {
            w.store(v, Ordering::Release);
        }
    }

    /// Bytes `[off, off+len)` of the mapping, or `None` if out of bounds.
    pub fn bytes(&self, off: usize, len: usize) -> Option<&[u8]> {
        if off.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: in bounds of the live mapping; see the type docs for the ownership protocol.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(off), len) })
    }

    /// Mutable bytes `[off, off+len)` of the mapping, or `None` if out of bounds.
    pub fn bytes_mut(&mut self, off: usize, len: usize) -> Option<&mut [u8]> {
        if off.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: in bounds of the live mapping and `&mut self` prevents other views through
        // this value; see the type docs for the ownership protocol with the kernel.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(off), len) })
    }
}

impl Drop for RingMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mapped in `map`; no view outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr() as *mut c_void, self.len);
        }
    }
}

/// Creates (or attaches to) TAP device `ifname` through `/dev/net/tun` with `IFF_TAP | IFF_NO_PI`,
/// non-blocking. Returns the file and the device name the kernel gave it.
pub fn tap_open(ifname: &str) -> io::Result<(File, String)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut ifr = IfReq::new(ifname)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("open /dev/net/tun for TAP {ifname:?}: {e}"),
            )
        })?;
    ifr.data[..2].copy_from_slice(&(IFF_TAP | IFF_NO_PI).to_ne_bytes());
    ifreq_ioctl(
        file.as_raw_fd(),
        TUNSETIFF,
        &mut ifr,
        "TUNSETIFF(IFF_TAP|IFF_NO_PI)",
        ifname,
    )?;
    let end = ifr.name.iter().position(|&b| b == 0).unwrap_or(16);
    let name = String::from_utf8_lossy(&ifr.name[..end]).into_owned();
    Ok((file, name))
}

/// Moves the calling thread into the network namespace referred to by `ns` (an open
/// `/var/run/netns/NAME` or `/proc/PID/ns/net`). Sockets created afterwards by this thread belong
/// to that namespace for their whole life, whichever thread later uses them.
pub fn enter_netns(ns: &File) -> io::Result<()> {
    // SAFETY: setns(2) with a valid descriptor; it affects only the calling thread.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("setns(CLONE_NEWNET): {e}"),
        ));
    }
    Ok(())
}

/// The system page size in bytes (4096 if it cannot be read).
pub fn page_size() -> usize {
    // SAFETY: sysconf(3) takes no pointers.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as usize
    } else {
        4096
    }
}

/// Effective user id of the process (0 = root).
pub fn geteuid() -> u32 {
    // SAFETY: geteuid(2) cannot fail and takes no arguments.
    unsafe { libc::geteuid() }
}

/// Set `SO_LINGER` to zero on a socket, so that closing it sends RST instead of FIN (abortive
/// close). Used by tests that need a Linux peer to reset a connection.
pub fn set_linger_zero(socket: &impl AsRawFd) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt(2) reads exactly size_of::<linger>() bytes from a valid local value.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const c_void,
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_rejects_bad_names() {
        assert!(IfReq::new("").is_err());
        assert!(IfReq::new("a-very-long-interface-name").is_err());
        assert!(IfReq::new("a/b").is_err());
        assert!(IfReq::new("eth0").is_ok());
        assert_eq!(size_of::<IfReq>(), 40);
    }

    #[test]
    fn loopback_queries_work_without_root() {
        let ctl = control_socket().unwrap();
        assert!(if_index(&ctl, "lo").unwrap() > 0);
        assert_eq!(if_hwaddr(&ctl, "lo").unwrap(), [0; 6]);
        assert!(if_mtu(&ctl, "lo").unwrap() >= 1500);
        let err = if_index(&ctl, "saps-nope0").unwrap_err();
        assert!(err.to_string().contains("saps-nope0"), "{err}");
    }
}
