//! The daemon's heap after start-up. Loading the probes parses the kernel's BTF (tens of
//! MB of short-lived allocations) and compiling the rules leaves freed blocks behind;
//! glibc keeps freed memory in its arenas, so without a trim the daemon's resident size
//! stays at that start-up peak for its whole life. A fleet agent is judged by its RSS.

/// Returns the heap's free memory to the kernel (glibc `malloc_trim`); a no-op with
/// other C libraries, whose allocators do not hold memory the same way.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no
    // preconditions and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
