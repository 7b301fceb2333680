//! CPU priority of the log's background work (the query indexer, the SIEM
//! sinks): derived data yields the cores to appends and proofs, and catches
//! up on what they leave idle.

/// Lowers the calling thread's CPU priority: nice +10 and the SCHED_IDLE
/// policy (Linux: both per thread; best effort). An idle-policy thread
/// runs only on a core nothing else wants and is preempted at once when a
/// log thread wakes (plain nice still held appends back by a scheduler
/// slice at each wake-up).
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority and sched_setscheduler on the calling thread
    // alone (its own ID; 0 = the caller), with a parameter that outlives
    // the call.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
        let idle = libc::sched_param { sched_priority: 0 };
        let _ = libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle);
    }
}
