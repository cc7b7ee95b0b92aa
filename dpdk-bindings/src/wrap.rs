//! Safe wrappers over the raw bindings. Every `unsafe` block says why it is sound.

use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::sys;

// ---------------------------------------------------------------------------------------------
// Errors and IDs
// ---------------------------------------------------------------------------------------------

/// A failed DPDK call: what was attempted, the (positive) errno and DPDK's text for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The operation, e.g. `"rte_eal_init"`.
    pub op: &'static str,
    /// Positive errno / rte_errno value (0 if DPDK gave none).
    pub code: i32,
    /// `rte_strerror(code)` or a message of ours.
    pub text: String,
}

impl Error {
    /// An error from an errno value (sign ignored), with `rte_strerror`'s text.
    pub fn from_errno(op: &'static str, code: i32) -> Error {
        let code = code.saturating_abs();
        Error {
            op,
            code,
            text: strerror(code),
        }
    }

    /// An error from the current `rte_errno`.
    pub fn last(op: &'static str) -> Error {
        // SAFETY: reads the calling thread's rte_errno (a thread-local int); no preconditions.
        let code = unsafe { sys::saps_rte_errno() };
        Error::from_errno(op, code)
    }

    fn msg(op: &'static str, text: impl Into<String>) -> Error {
        Error {
            op,
            code: 0,
            text: text.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code != 0 {
            write!(f, "{}: {} (errno {})", self.op, self.text, self.code)
        } else {
            write!(f, "{}: {}", self.op, self.text)
        }
    }
}

impl std::error::Error for Error {}

/// `rte_strerror` as a Rust string.
pub fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror accepts any value and returns a pointer to a NUL-terminated string
    // (static or thread-local) that stays valid until the next call on this thread; we copy it
    // out at once.
    unsafe {
        let p = sys::rte_strerror(code as c_int);
        if p.is_null() {
            return format!("error {code}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// An ethdev port number.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// A queue number on a port.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u16);

/// A NUMA socket; [`SocketId::ANY`] when the device has no affinity (virtual devices).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SocketId(pub i32);

impl SocketId {
    /// `SOCKET_ID_ANY`.
    pub const ANY: SocketId = SocketId(-1);
}

// ---------------------------------------------------------------------------------------------
// EAL
// ---------------------------------------------------------------------------------------------

/// DPDK allows one EAL initialisation per process, successful or not.
static EAL_CALLED: AtomicBool = AtomicBool::new(false);

struct EalInner;

impl Drop for EalInner {
    fn drop(&mut self) {
        // SAFETY: the last handle is gone: every pool and port (which hold handles) was
        // dropped first, so nothing uses EAL memory any more.
        unsafe {
            sys::rte_eal_cleanup();
        }
    }
}

/// The initialised Environment Abstraction Layer. Cloning shares it; `rte_eal_cleanup` runs when
/// the last clone (including those held by pools and ports) drops. Once per process.
#[derive(Clone)]
pub struct Eal(#[allow(dead_code)] Arc<EalInner>); // held for its Drop

impl fmt::Debug for Eal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Eal")
    }
}

impl Eal {
    /// Initialises the EAL with `args` (without the program name, which is added). Fails if the
    /// EAL was already initialised (or tried) in this process, or with DPDK's reason.
    pub fn init<I, S>(args: I) -> Result<Eal, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut owned = vec![CString::new("saps").expect("no NUL")];
        for a in args {
            let a = a.as_ref();
            owned
                .push(CString::new(a).map_err(|_| {
                    Error::msg("rte_eal_init", format!("argument {a:?} has a NUL"))
                })?);
        }
        if EAL_CALLED.swap(true, Ordering::SeqCst) {
            return Err(Error::msg(
                "rte_eal_init",
                "the EAL can be initialised only once per process",
            ));
        }
        // The EAL may keep pointers into argv (and permutes it): leak the strings, once per
        // process.
        let mut argv: Vec<*mut c_char> = owned.into_iter().map(CString::into_raw).collect();
        let argc = argv.len() as c_int;
        argv.push(std::ptr::null_mut());
        let argv = Box::leak(argv.into_boxed_slice());
        // SAFETY: argv holds argc valid NUL-terminated strings plus a NULL, all leaked so they
        // outlive the EAL; EAL_CALLED guarantees this is the only call in the process.
        let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(Error::last("rte_eal_init"));
        }
        Ok(Eal(Arc::new(EalInner)))
    }

    /// Number of ethdev ports the EAL found (PCI devices bound to a PMD, vdevs).
    pub fn port_count(&self) -> u16 {
        // SAFETY: the EAL is initialised (self exists); no arguments.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// The port whose ethdev name is `name` (a PCI address such as `0000:01:00.0` or a vdev
    /// name such as `net_ring0`, without the vdev's `,key=value` arguments).
    pub fn port_by_name(&self, name: &str) -> Result<PortId, Error> {
        let c = CString::new(name)
            .map_err(|_| Error::msg("rte_eth_dev_get_port_by_name", "name has a NUL"))?;
        let mut id: u16 = 0;
        // SAFETY: c is a valid C string and id a valid out-pointer for the duration of the call.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(Error::msg(
                "rte_eth_dev_get_port_by_name",
                format!(
                    "no DPDK port named {name:?} ({} port(s) probed); check the PCI address or vdev string",
                    self.port_count()
                ),
            ));
        }
        Ok(PortId(id))
    }
}

// ---------------------------------------------------------------------------------------------
// Mempool and mbufs
// ---------------------------------------------------------------------------------------------

struct PoolInner {
    ptr: NonNull<sys::rte_mempool>,
    eal: ManuallyDrop<Eal>,
}

// SAFETY: DPDK's default mempool ops (ring "mp_mc") are multi-producer/multi-consumer safe, and
// the pointer is only freed in Drop, after every user is gone.
unsafe impl Send for PoolInner {}
// SAFETY: as above; shared access only calls MT-safe mempool functions.
unsafe impl Sync for PoolInner {}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: the pool is valid until freed here.
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use != 0 {
            // Mbufs from this pool are still owned somewhere (a driver ring or an Mbuf):
            // freeing the pool, or letting EAL clean up its memory, would pull it from under
            // them. Leak both instead.
            return;
        }
        // SAFETY: no mbuf of the pool is in use and no other handle exists (Arc count 0).
        unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
        // SAFETY: dropped exactly once, here.
        unsafe { ManuallyDrop::drop(&mut self.eal) };
    }
}

/// A pool of packet mbufs (`rte_pktmbuf_pool_create`). Cloning shares it.
#[derive(Clone)]
pub struct Mempool(Arc<PoolInner>);

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mempool")
            .field("capacity", &self.capacity())
            .field("available", &self.available())
            .finish()
    }
}

impl Mempool {
    /// Creates a pool of `count` mbufs with `data_room` bytes each (headroom included; use
    /// [`Mempool::DEFAULT_DATA_ROOM`] for 2048 bytes of frame after the headroom), a per-lcore
    /// cache of `cache` mbufs, on `socket`. `name` must be unique in the process.
    pub fn new(
        eal: &Eal,
        name: &str,
        count: u32,
        cache: u32,
        data_room: u16,
        socket: SocketId,
    ) -> Result<Mempool, Error> {
        let c = CString::new(name)
            .map_err(|_| Error::msg("rte_pktmbuf_pool_create", "name has a NUL"))?;
        // SAFETY: c is a valid C string for the call; the other arguments are plain values that
        // DPDK validates (returning NULL and setting rte_errno on failure).
        let p = unsafe {
            sys::rte_pktmbuf_pool_create(c.as_ptr(), count, cache, 0, data_room, socket.0)
        };
        let ptr = NonNull::new(p).ok_or_else(|| Error::last("rte_pktmbuf_pool_create"))?;
        Ok(Mempool(Arc::new(PoolInner {
            ptr,
            eal: ManuallyDrop::new(eal.clone()),
        })))
    }

    /// `RTE_MBUF_DEFAULT_BUF_SIZE`: 2048 bytes of data after the default headroom.
    pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

    /// The raw pool pointer (valid while this handle lives).
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.0.ptr.as_ptr()
    }

    /// Mbufs in the pool (free or not).
    pub fn capacity(&self) -> u32 {
        self.available() + self.in_use()
    }

    /// Free mbufs (including those in per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid while self lives.
        unsafe { sys::rte_mempool_avail_count(self.as_ptr()) }
    }

    /// Mbufs allocated and not yet freed (held by us or by a driver).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is valid while self lives.
        unsafe { sys::rte_mempool_in_use_count(self.as_ptr()) }
    }

    /// One mbuf, reset, with an empty data area; `None` if the pool is empty.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is a valid pktmbuf pool while self lives.
        let m = unsafe { sys::saps_rte_pktmbuf_alloc(self.as_ptr()) };
        NonNull::new(m).map(Mbuf)
    }

    /// Allocates `n` mbufs at once (all or none) and appends them to `out` (which should have
    /// the capacity, so the hot path does not allocate). False if the pool had fewer than `n`.
    pub fn alloc_bulk(&self, n: usize, out: &mut Vec<Mbuf>) -> bool {
        out.reserve(n);
        let len = out.len();
        // SAFETY: `out` has room for n more elements; Mbuf is repr(transparent) over a non-null
        // mbuf pointer, so the spare capacity is a valid array of n `*mut rte_mbuf` slots. The
        // pointers are only exposed as Mbufs (set_len) if DPDK filled all n.
        unsafe {
            let slots = out.as_mut_ptr().add(len) as *mut *mut sys::rte_mbuf;
            if sys::saps_rte_pktmbuf_alloc_bulk(self.as_ptr(), slots, n as u32) != 0 {
                return false;
            }
            out.set_len(len + n);
        }
        true
    }
}

/// One packet buffer, owned: freed back to its pool on drop. Single-segment frames only.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is uniquely owned; freeing it from any thread is allowed (MT-safe pools).
unsafe impl Send for Mbuf {}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf").field("len", &self.len()).finish()
    }
}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` must be a valid mbuf that nobody else owns or frees, and its pool must outlive it.
    pub unsafe fn from_raw(m: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf(m)
    }

    /// Gives up ownership without freeing: for handing the mbuf to a driver.
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let m = self.0;
        std::mem::forget(self);
        m
    }

    /// Bytes of frame in the first segment.
    pub fn len(&self) -> usize {
        // SAFETY: self owns a valid mbuf.
        usize::from(unsafe { sys::saps_rte_pktmbuf_data_len(self.0.as_ptr()) })
    }

    /// True if the mbuf holds no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total frame length over all segments.
    pub fn pkt_len(&self) -> usize {
        // SAFETY: self owns a valid mbuf.
        unsafe { sys::saps_rte_pktmbuf_pkt_len(self.0.as_ptr()) as usize }
    }

    /// Segments in the chain.
    pub fn segments(&self) -> u16 {
        // SAFETY: self owns a valid mbuf.
        unsafe { sys::saps_rte_pktmbuf_nb_segs(self.0.as_ptr()) }
    }

    /// The frame bytes of the first segment, in place.
    pub fn data(&self) -> &[u8] {
        // SAFETY: mtod points at data_len initialised bytes inside the mbuf's buffer, which
        // lives as long as self and is not written while borrowed shared.
        unsafe {
            let p = sys::saps_rte_pktmbuf_mtod(self.0.as_ptr()) as *const u8;
            std::slice::from_raw_parts(p, self.len())
        }
    }

    /// The whole writable data room from the data offset (current data plus tailroom).
    /// Set the frame length with [`Mbuf::set_len`] after writing.
    pub fn room_mut(&mut self) -> &mut [u8] {
        // SAFETY: mtod + (data_len + tailroom) stays inside the mbuf's buffer (tailroom is
        // computed from buf_len), which self owns exclusively. The bytes are plain u8, so
        // stale contents are fine to expose.
        unsafe {
            let m = self.0.as_ptr();
            let cap = usize::from(sys::saps_rte_pktmbuf_data_len(m))
                + usize::from(sys::saps_rte_pktmbuf_tailroom(m));
            let p = sys::saps_rte_pktmbuf_mtod(m) as *mut u8;
            std::slice::from_raw_parts_mut(p, cap)
        }
    }

    /// Makes the first `len` bytes of [`Mbuf::room_mut`] the frame (clamped to the room).
    pub fn set_len(&mut self, len: usize) {
        let cap = self.room_mut().len();
        let len = len.min(cap).min(usize::from(u16::MAX)) as u16;
        // SAFETY: self owns a valid single-segment mbuf; len fits its data room.
        unsafe { sys::saps_rte_pktmbuf_set_len(self.0.as_ptr(), len) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: self owns the mbuf (into_raw forgets self, so this never runs twice).
        unsafe { sys::saps_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

/// How to set up a port: one RX and one TX queue.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PortSetup {
    /// RX descriptors (adjusted to the device's limits).
    pub rx_desc: u16,
    /// TX descriptors (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Receive every frame regardless of destination MAC.
    pub promiscuous: bool,
}

impl Default for PortSetup {
    fn default() -> Self {
        PortSetup {
            rx_desc: 1024,
            tx_desc: 1024,
            promiscuous: true,
        }
    }
}

/// Link state.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// Carrier up.
    pub up: bool,
    /// Speed in Mb/s (0 if unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic port counters (`rte_eth_stats`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received.
    pub ipackets: u64,
    /// Frames sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Frames the hardware dropped because the RX ring was full.
    pub imissed: u64,
    /// Erroneous received frames.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Outcome of [`EthPort::tx_descriptor_status`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TxDescStatus {
    /// The descriptor holds a frame not yet sent.
    Full,
    /// The descriptor is done (sent) or free.
    Done,
    /// Not in use by the driver (beyond the ring's size).
    Unavailable,
    /// The driver does not implement the query.
    NotSupported,
}

/// A configured ethdev port with one RX and one TX queue. Stopped and closed on drop.
pub struct EthPort {
    id: PortId,
    rx_desc: u16,
    tx_desc: u16,
    started: bool,
    // Kept alive: the RX queue refills from this pool.
    _pool: Mempool,
    eal: Eal,
}

impl fmt::Debug for EthPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EthPort")
            .field("id", &self.id)
            .field("started", &self.started)
            .finish()
    }
}

fn check(op: &'static str, rc: c_int) -> Result<(), Error> {
    if rc < 0 {
        Err(Error::from_errno(op, rc))
    } else {
        Ok(())
    }
}

impl EthPort {
    /// Configures port `id` with one RX queue (refilled from `rx_pool`) and one TX queue.
    /// Does not start it.
    pub fn configure(
        eal: &Eal,
        id: PortId,
        setup: &PortSetup,
        rx_pool: &Mempool,
    ) -> Result<EthPort, Error> {
        // SAFETY: plain value argument.
        if unsafe { sys::rte_eth_dev_is_valid_port(id.0) } == 0 {
            return Err(Error::msg(
                "rte_eth_dev_is_valid_port",
                format!("port {} does not exist", id.0),
            ));
        }
        let conf = sys::rte_eth_conf::default();
        // SAFETY: conf is a valid, zero-initialised rte_eth_conf (no offloads, no RSS) that
        // lives for the call.
        check("rte_eth_dev_configure", unsafe {
            sys::rte_eth_dev_configure(id.0, 1, 1, &conf)
        })?;
        let mut port = EthPort {
            id,
            rx_desc: setup.rx_desc,
            tx_desc: setup.tx_desc,
            started: false,
            _pool: rx_pool.clone(),
            eal: eal.clone(),
        };
        // SAFETY: valid port; the pointers are to our two u16 fields.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            sys::rte_eth_dev_adjust_nb_rx_tx_desc(id.0, &mut port.rx_desc, &mut port.tx_desc)
        })?;
        let socket = port.socket();
        // SAFETY: valid configured port; NULL rx_conf means driver defaults; the pool outlives
        // the queue because the port holds a clone of it.
        check("rte_eth_rx_queue_setup", unsafe {
            sys::rte_eth_rx_queue_setup(
                id.0,
                0,
                port.rx_desc,
                socket.0 as u32,
                std::ptr::null(),
                rx_pool.as_ptr(),
            )
        })?;
        // SAFETY: valid configured port; NULL tx_conf means driver defaults.
        check("rte_eth_tx_queue_setup", unsafe {
            sys::rte_eth_tx_queue_setup(id.0, 0, port.tx_desc, socket.0 as u32, std::ptr::null())
        })?;
        if setup.promiscuous {
            // Some vdevs do not support it; that is not fatal.
            // SAFETY: valid port.
            let _ = unsafe { sys::rte_eth_promiscuous_enable(id.0) };
        }
        Ok(port)
    }

    /// The port's number.
    pub fn id(&self) -> PortId {
        self.id
    }

    /// The EAL this port belongs to.
    pub fn eal(&self) -> &Eal {
        &self.eal
    }

    /// RX descriptors actually configured.
    pub fn rx_desc(&self) -> u16 {
        self.rx_desc
    }

    /// TX descriptors actually configured.
    pub fn tx_desc(&self) -> u16 {
        self.tx_desc
    }

    /// The device's NUMA socket.
    pub fn socket(&self) -> SocketId {
        // SAFETY: valid port id.
        SocketId(unsafe { sys::rte_eth_dev_socket_id(self.id.0) })
    }

    /// Starts the port.
    pub fn start(&mut self) -> Result<(), Error> {
        // SAFETY: the port is configured with its queues set up.
        check("rte_eth_dev_start", unsafe {
            sys::rte_eth_dev_start(self.id.0)
        })?;
        self.started = true;
        Ok(())
    }

    /// Stops the port (the driver frees the mbufs in its rings).
    pub fn stop(&mut self) -> Result<(), Error> {
        if !self.started {
            return Ok(());
        }
        self.started = false;
        // SAFETY: valid, started port.
        check("rte_eth_dev_stop", unsafe {
            sys::rte_eth_dev_stop(self.id.0)
        })
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6], Error> {
        let mut a = sys::rte_ether_addr::default();
        // SAFETY: `a` is a valid out-parameter for the call.
        check("rte_eth_macaddr_get", unsafe {
            sys::rte_eth_macaddr_get(self.id.0, &mut a)
        })?;
        Ok(a.addr_bytes)
    }

    /// MTU.
    pub fn mtu(&self) -> Result<u16, Error> {
        let mut mtu = 0u16;
        // SAFETY: `mtu` is a valid out-parameter.
        check("rte_eth_dev_get_mtu", unsafe {
            sys::rte_eth_dev_get_mtu(self.id.0, &mut mtu)
        })?;
        Ok(mtu)
    }

    /// Link state without waiting.
    pub fn link(&self) -> Result<Link, Error> {
        let mut l = sys::rte_eth_link::default();
        // SAFETY: `l` is a valid out-parameter.
        check("rte_eth_link_get_nowait", unsafe {
            sys::rte_eth_link_get_nowait(self.id.0, &mut l)
        })?;
        Ok(Link {
            up: l.link_status() != 0,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() != 0,
        })
    }

    /// Basic counters.
    pub fn stats(&self) -> Result<Stats, Error> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: `s` is a valid out-parameter.
        check("rte_eth_stats_get", unsafe {
            sys::rte_eth_stats_get(self.id.0, &mut s)
        })?;
        Ok(Stats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Extended counters as (name, value); allocates (not for the hot path).
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, Error> {
        // SAFETY: NULL/0 asks for the count only.
        let n = unsafe { sys::rte_eth_xstats_get_names(self.id.0, std::ptr::null_mut(), 0) };
        check("rte_eth_xstats_get_names", n)?;
        let n = n as usize;
        let mut names = vec![sys::rte_eth_xstat_name::default(); n];
        let mut vals = vec![sys::rte_eth_xstat::default(); n];
        // SAFETY: both arrays hold n elements.
        let got = unsafe { sys::rte_eth_xstats_get_names(self.id.0, names.as_mut_ptr(), n as u32) };
        check("rte_eth_xstats_get_names", got)?;
        // SAFETY: as above.
        let got2 = unsafe { sys::rte_eth_xstats_get(self.id.0, vals.as_mut_ptr(), n as u32) };
        check("rte_eth_xstats_get", got2)?;
        let m = (got as usize).min(got2 as usize).min(n);
        Ok(vals[..m]
            .iter()
            .map(|v| {
                let name = names
                    .get(v.id as usize)
                    .map(|x| {
                        // SAFETY: rte_eth_xstat_name.name is a NUL-terminated fixed array
                        // (DPDK writes at most its size including the NUL).
                        unsafe { CStr::from_ptr(x.name.as_ptr()) }
                            .to_string_lossy()
                            .into_owned()
                    })
                    .unwrap_or_default();
                (name, v.value)
            })
            .collect())
    }

    /// Receives up to `max` (at most 64) frames on queue 0, shows each to `f` in place, then
    /// frees the whole burst at once (one pool operation per burst rather than per frame).
    /// Returns how many. If `f` panics, the rest of the burst leaks (never a double free).
    pub fn rx_burst_with(&mut self, max: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        let mut ptrs = [std::ptr::null_mut::<sys::rte_mbuf>(); 64];
        let n = max.min(ptrs.len()) as u16;
        // SAFETY: ptrs has room for n pointers; the port is configured; queue 0 is only used by
        // this &mut self.
        let got = unsafe { sys::saps_rte_eth_rx_burst(self.id.0, 0, ptrs.as_mut_ptr(), n) };
        let got = usize::from(got);
        for p in &ptrs[..got] {
            let Some(nn) = NonNull::new(*p) else { continue };
            // SAFETY: rx_burst returned ownership of `got` valid mbufs from our RX pool; the
            // borrowed view is given up (into_raw) before the bulk free below.
            let m = unsafe { Mbuf::from_raw(nn) };
            f(m.data());
            let _ = m.into_raw();
        }
        // SAFETY: the first `got` pointers are mbufs we own and no longer reference; free_bulk
        // skips NULL entries and returns each segment to its pool.
        unsafe { sys::rte_pktmbuf_free_bulk(ptrs.as_mut_ptr(), got as u32) };
        got
    }

    /// Receives up to `max` frames on queue 0 and appends them to `out` as owned mbufs (give
    /// `out` the capacity up front so the hot path does not allocate). Returns how many.
    pub fn rx_burst(&mut self, max: usize, out: &mut Vec<Mbuf>) -> usize {
        let n = max.min(usize::from(u16::MAX));
        out.reserve(n);
        let len = out.len();
        // SAFETY: `out` has spare capacity for n Mbufs, which are repr(transparent) non-null
        // mbuf pointers; only the `got` slots DPDK filled (with valid, owned mbufs) become
        // part of the vector.
        unsafe {
            let slots = out.as_mut_ptr().add(len) as *mut *mut sys::rte_mbuf;
            let got = sys::saps_rte_eth_rx_burst(self.id.0, 0, slots, n as u16);
            out.set_len(len + usize::from(got));
            usize::from(got)
        }
    }

    /// Hands the frames at the front of `pkts` to TX queue 0; those the driver took are
    /// removed from `pkts` (the driver owns them now), the rest stay for the next call.
    /// Returns how many were taken.
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        let n = pkts.len().min(usize::from(u16::MAX));
        if n == 0 {
            return 0;
        }
        // SAFETY: pkts holds n valid owned mbufs laid out as `*mut rte_mbuf` (repr
        // transparent); the driver takes ownership of the first `sent`.
        let sent = usize::from(unsafe {
            sys::saps_rte_eth_tx_burst(
                self.id.0,
                0,
                pkts.as_mut_ptr() as *mut *mut sys::rte_mbuf,
                n as u16,
            )
        });
        // The driver owns the first `sent` now: forget them without freeing, keep the rest.
        for m in pkts.drain(..sent) {
            let _ = m.into_raw();
        }
        sent
    }

    /// Status of the TX descriptor `offset` places after the last one written.
    pub fn tx_descriptor_status(&self, offset: u16) -> TxDescStatus {
        // SAFETY: valid port and queue 0; the function only reads the ring.
        let rc = unsafe { sys::saps_rte_eth_tx_descriptor_status(self.id.0, 0, offset) };
        match rc {
            x if x == sys::RTE_ETH_TX_DESC_FULL as c_int => TxDescStatus::Full,
            x if x == sys::RTE_ETH_TX_DESC_DONE as c_int => TxDescStatus::Done,
            x if x == sys::RTE_ETH_TX_DESC_UNAVAIL as c_int => TxDescStatus::Unavailable,
            _ => TxDescStatus::NotSupported,
        }
    }

    /// Asks the driver to free up to `max` (0 = all) sent mbufs of TX queue 0 now. Returns the
    /// number freed, or `None` if the driver does not support it.
    pub fn tx_done_cleanup(&mut self, max: u32) -> Option<u32> {
        // SAFETY: valid port and queue 0, used only through &mut self.
        let rc = unsafe { sys::saps_rte_eth_tx_done_cleanup(self.id.0, 0, max) };
        u32::try_from(rc).ok()
    }
}

impl Drop for EthPort {
    fn drop(&mut self) {
        let _ = self.stop();
        // SAFETY: the port is stopped; closing releases the driver's queues and the mbufs in
        // them (back to the pool, which we still hold).
        unsafe {
            sys::rte_eth_dev_close(self.id.0);
        }
    }
}
