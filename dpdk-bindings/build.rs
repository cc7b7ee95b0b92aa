//! Build script: does nothing unless the `dpdk` feature is on. With it: probes libdpdk (>= 22.11)
//! with pkg-config, compiles the C shim for DPDK's `static inline` functions with the raw
//! `pkg-config --cflags libdpdk` flags, and runs bindgen over a narrow allowlist with the same
//! flags (they carry `-include rte_config.h` and `-march=...`, which the headers need).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_DPDK");
    // Without the feature: nothing to build, nothing to link.
    #[cfg(feature = "dpdk")]
    if std::env::var_os("CARGO_FEATURE_DPDK").is_some() {
        dpdk::build();
    }
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::path::PathBuf;
    use std::process::Command;

    const INSTALL_HINT: &str = "install DPDK's development files: \
         `apt-get install -y libdpdk-dev libclang-dev pkg-config` (Debian 12 ships DPDK 22.11), \
         or build without `--features dpdk`";

    fn fail(msg: &str) -> ! {
        // cargo shows this line in the build error; keep it to one line.
        eprintln!("error: dpdk-bindings: {msg}; {INSTALL_HINT}");
        println!("cargo:warning=dpdk-bindings: {msg}; {INSTALL_HINT}");
        std::process::exit(1);
    }

    fn pkg_config_raw(arg: &str) -> Vec<String> {
        let out = Command::new("pkg-config")
            .args([arg, "libdpdk"])
            .output()
            .unwrap_or_else(|e| fail(&format!("cannot run pkg-config ({e})")));
        if !out.status.success() {
            fail("pkg-config does not know libdpdk");
        }
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    pub fn build() {
        println!("cargo:rerun-if-changed=src/shim.c");
        println!("cargo:rerun-if-changed=src/shim.h");
        println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
        // Link flags (shared libraries; the EAL loads PMDs from its plugin directory itself).
        let lib = pkg_config::Config::new()
            .atleast_version("22.11")
            .probe("libdpdk")
            .unwrap_or_else(|e| {
                let first = e.to_string();
                let first = first.lines().next().unwrap_or("not found").to_string();
                fail(&format!(
                    "libdpdk >= 22.11 not found by pkg-config ({first})"
                ))
            });
        println!("cargo:version={}", lib.version);
        let cflags = pkg_config_raw("--cflags");

        let mut cc = cc::Build::new();
        cc.file("src/shim.c").warnings(true);
        for f in &cflags {
            cc.flag(f);
        }
        cc.compile("saps_dpdk_shim");

        let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
        let bindings = bindgen::Builder::default()
            .header("src/shim.h")
            .clang_args(&cflags)
            .allowlist_function("rte_eal_init")
            .allowlist_function("rte_eal_cleanup")
            .allowlist_function("rte_strerror")
            .allowlist_function("rte_socket_id")
            .allowlist_function("rte_pktmbuf_pool_create")
            .allowlist_function("rte_mempool_free")
            .allowlist_function("rte_mempool_avail_count")
            .allowlist_function("rte_mempool_in_use_count")
            .allowlist_function("rte_pktmbuf_free_bulk")
            .allowlist_function("rte_eth_dev_count_avail")
            .allowlist_function("rte_eth_dev_get_port_by_name")
            .allowlist_function("rte_eth_dev_is_valid_port")
            .allowlist_function("rte_eth_dev_socket_id")
            .allowlist_function("rte_eth_dev_info_get")
            .allowlist_function("rte_eth_dev_configure")
            .allowlist_function("rte_eth_dev_adjust_nb_rx_tx_desc")
            .allowlist_function("rte_eth_rx_queue_setup")
            .allowlist_function("rte_eth_tx_queue_setup")
            .allowlist_function("rte_eth_dev_start")
            .allowlist_function("rte_eth_dev_stop")
            .allowlist_function("rte_eth_dev_close")
            .allowlist_function("rte_eth_macaddr_get")
            .allowlist_function("rte_eth_link_get_nowait")
            .allowlist_function("rte_eth_stats_get")
            .allowlist_function("rte_eth_xstats_get_names")
            .allowlist_function("rte_eth_xstats_get")
            .allowlist_function("rte_eth_promiscuous_enable")
            .allowlist_function("rte_eth_dev_get_mtu")
            .allowlist_function("rte_eth_dev_set_mtu")
            .allowlist_function("saps_.*")
            .allowlist_var("RTE_MBUF_DEFAULT_BUF_SIZE")
            .allowlist_var("RTE_PKTMBUF_HEADROOM")
            .allowlist_var("RTE_ETH_NAME_MAX_LEN")
            .allowlist_var("RTE_ETH_TX_DESC_.*")
            // Packed/aligned network headers bindgen cannot lay out; nothing here needs them.
            .opaque_type("rte_arp_hdr")
            .opaque_type("rte_arp_ipv4")
            .opaque_type("rte_l2tpv2_combined_msg_hdr")
            .opaque_type("rte_gtp_psc_generic_hdr")
            // Only pointers to these cross the boundary.
            .opaque_type("rte_mempool")
            .opaque_type("rte_mbuf")
            .derive_default(true)
            .layout_tests(false)
            .generate_comments(false)
            .generate()
            .unwrap_or_else(|e| fail(&format!("bindgen over the DPDK headers failed ({e})")));
        bindings
            .write_to_file(out.join("bindings.rs"))
            .unwrap_or_else(|e| fail(&format!("writing bindings.rs: {e}")));
    }
}
