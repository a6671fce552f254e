//! mimalloc's options, as every Reelflow binary sets them at startup.
//!
//! The binaries (`reelflow`, `reelflow-bench`) use mimalloc as their global
//! allocator: the dataflows allocate and free many small rows per event,
//! and its thread-local free lists take a fifth off the time glibc's malloc
//! spends there. Its defaults fit them less well; see each option.

/// `mi_option_purge_delay` in the mimalloc (v3) that libmimalloc-sys
/// builds: its bindings name the options around it but not this one.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = libmimalloc_sys::mi_option_use_numa_nodes - 1;

/// Memory mimalloc frees goes back to the OS only after it went unused for
/// this long. Its default (1 s in this version; 10 ms in v2) hands pages
/// back while the dataflows still churn through them, and the kernel then
/// zeroes them again on the next fault: a sixth of the dataflows' time went to that, and 2 workers ran
/// about 25 % slower (`reelflow-bench dataflow`, BENCHMARKS.md).
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// `mi_option_arena_eager_commit` in the same mimalloc: two before
/// `mi_option_large_os_pages`, which its bindings do name.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = libmimalloc_sys::mi_option_large_os_pages - 2;

/// mimalloc's options as Reelflow sets them at startup, each unless its
/// environment variable (which mimalloc reads itself) is set.
///
/// - The purge delay ([`PURGE_DELAY_MS`]).
/// - Arenas are committed as they are used, not eagerly (mimalloc's default
///   on Linux). Eagerly committed, a replay of the log spent 43 % of its
///   CPU in the kernel zeroing pages (`clear_page_erms` in perf), against
///   16 % without; in alternating runs a replay cost 8.8–11 µs of worker
///   CPU per record against 6.6–7.6 µs (BENCHMARKS.md).
const MIMALLOC_OPTIONS: [(libmimalloc_sys::mi_option_t, &str, std::ffi::c_long); 2] = [
    (MI_OPTION_PURGE_DELAY, "MIMALLOC_PURGE_DELAY", PURGE_DELAY_MS),
    (MI_OPTION_ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT", 0),
];

/// Sets one of mimalloc's integer options.
#[allow(unsafe_code)]
fn set_mimalloc_option(option: libmimalloc_sys::mi_option_t, value: std::ffi::c_long) {
    // SAFETY: `mi_option_set` stores an integer option that mimalloc reads
    // when it decides how to get and give back memory; it touches no
    // memory of ours.
    unsafe { libmimalloc_sys::mi_option_set(option, value) };
}

/// Sets [`MIMALLOC_OPTIONS`], each unless its environment variable (which
/// mimalloc reads itself) is set. Call it first thing in `main`.
pub fn configure() {
    for (option, variable, value) in MIMALLOC_OPTIONS {
        if std::env::var_os(variable).is_none() {
            set_mimalloc_option(option, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each option set at startup is the one mimalloc reads from its
    /// environment variable: a child test process started with the
    /// variables set reads them back under the option numbers used here.
    #[test]
    fn the_mimalloc_options_are_the_ones_mimalloc_names_so() {
        const NAME: &str = "allocator::tests::the_mimalloc_options_are_the_ones_mimalloc_names_so";
        let values: [std::ffi::c_long; 2] = [4321, 3];
        if std::env::var_os("REELFLOW_TEST_MIMALLOC_CHILD").is_some() {
            for ((option, variable, _), want) in MIMALLOC_OPTIONS.iter().zip(values) {
                #[allow(unsafe_code)]
                // SAFETY: reads one of mimalloc's integer options.
                let read = unsafe { libmimalloc_sys::mi_option_get(*option) };
                assert_eq!(read, want, "option {option} is not {variable}");
            }
            return;
        }
        let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"));
        child
            .args(["--exact", NAME, "--test-threads", "1"])
            .env("REELFLOW_TEST_MIMALLOC_CHILD", "1");
        for ((_, variable, _), value) in MIMALLOC_OPTIONS.iter().zip(values) {
            child.env(variable, value.to_string());
        }
        let status = child.status().expect("starting the test binary again");
        assert!(status.success(), "the child read other options than the variables set");
    }
}
