//! The fields gocpu reads, declared once: the struct, the DWARF lookup spec and the table
//! renderer all come from the list below.

use super::Field;

/// How to find one [`StructOffsets`] field in DWARF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// The Rust field name in [`StructOffsets`].
    pub name: &'static str,
    /// The DWARF name of the containing type, e.g. "runtime.g".
    pub strukt: &'static str,
    /// Member paths tried in order (dots descend into nested structs), e.g. `runq.size` since
    /// Go 1.25 where earlier releases had `runqsize`.
    pub paths: &'static [&'static str],
}

macro_rules! struct_offsets {
    ($( $(#[$doc:meta])* $field:ident: $strukt:literal => [$($path:literal),+ $(,)?], )*) => {
        /// Layouts of the runtime fields gocpu reads (amd64), from DWARF or the generated table.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct StructOffsets {
            $( $(#[$doc])* pub $field: Field, )*
        }

        /// Where each [`StructOffsets`] field is found in DWARF, in declaration order.
        pub const FIELD_SPECS: &[FieldSpec] = &[
            $( FieldSpec { name: stringify!($field), strukt: $strukt, paths: &[$($path),+] }, )*
        ];

        impl StructOffsets {
            /// Builds the struct from one [`Field`] per spec of [`FIELD_SPECS`], in order.
            pub fn from_fields(fields: &[Field]) -> Option<StructOffsets> {
                let mut it = fields.iter().copied();
                let s = StructOffsets { $( $field: it.next()?, )* };
                it.next().is_none().then_some(s)
            }

            /// Every field with its name, in [`FIELD_SPECS`] order.
            pub fn fields(&self) -> Vec<(&'static str, Field)> {
                vec![ $( (stringify!($field), self.$field), )* ]
            }
        }
    };
}

struct_offsets! {
    /// `g.goid`: the goroutine id (int64 before Go 1.20, uint64 since).
    g_goid: "runtime.g" => ["goid"],
    /// `g.atomicstatus`: `_Grunnable`, `_Grunning`, `_Gwaiting`, ... (atomic.Uint32 since 1.20).
    g_atomicstatus: "runtime.g" => ["atomicstatus"],
    /// `g.m`: the M running this goroutine, nil when not running.
    g_m: "runtime.g" => ["m"],
    /// `g.waitreason`: why a `_Gwaiting` goroutine waits (a per-version enum, uint8).
    g_waitreason: "runtime.g" => ["waitreason"],
    /// `g.waitsince`: approximate nanotime when the goroutine started waiting.
    g_waitsince: "runtime.g" => ["waitsince"],
    /// `g.gopc`: PC of the `go` statement that created the goroutine.
    g_gopc: "runtime.g" => ["gopc"],
    /// `g.startpc`: PC of the goroutine's function.
    g_startpc: "runtime.g" => ["startpc"],
    /// `g.stack.lo`: lowest address of the goroutine stack.
    g_stack_lo: "runtime.g" => ["stack.lo"],
    /// `g.stack.hi`: one past the highest address of the goroutine stack.
    g_stack_hi: "runtime.g" => ["stack.hi"],
    /// `g.sched.sp`: saved stack pointer of a goroutine that is not running.
    g_sched_sp: "runtime.g" => ["sched.sp"],
    /// `g.sched.pc`: saved program counter of a goroutine that is not running.
    g_sched_pc: "runtime.g" => ["sched.pc"],
    /// `g.sched.bp`: saved frame pointer of a goroutine that is not running.
    g_sched_bp: "runtime.g" => ["sched.bp"],
    /// `m.g0`: the M's scheduling goroutine.
    m_g0: "runtime.m" => ["g0"],
    /// `m.curg`: the user goroutine the M runs, nil while in the scheduler.
    m_curg: "runtime.m" => ["curg"],
    /// `m.p`: the P the M holds (a `puintptr`), 0 when none.
    m_p: "runtime.m" => ["p"],
    /// `m.id`: the runtime's M number.
    m_id: "runtime.m" => ["id"],
    /// `m.procid`: the M's kernel thread id (TID).
    m_procid: "runtime.m" => ["procid"],
    /// `m.spinning`: the M is out of work and actively looking for some.
    m_spinning: "runtime.m" => ["spinning"],
    /// `m.blocked`: the M is parked on a note (futex sleep).
    m_blocked: "runtime.m" => ["blocked"],
    /// `m.incgo`: the M is running a cgo call.
    m_incgo: "runtime.m" => ["incgo"],
    /// `m.ncgocall`: number of cgo calls the M made.
    m_ncgocall: "runtime.m" => ["ncgocall"],
    /// `p.id`: the P's index in `allp`.
    p_id: "runtime.p" => ["id"],
    /// `p.status`: `_Pidle`, `_Prunning`, `_Psyscall`, ...
    p_status: "runtime.p" => ["status"],
    /// `p.m`: the M holding this P (a `muintptr`), 0 when idle.
    p_m: "runtime.p" => ["m"],
    /// `p.runqhead`: head index of the P's local run queue.
    p_runqhead: "runtime.p" => ["runqhead"],
    /// `p.runqtail`: tail index of the P's local run queue (`tail - head` = queued goroutines).
    p_runqtail: "runtime.p" => ["runqtail"],
    /// `p.runnext`: the goroutine to run next, ahead of the queue (a `guintptr`).
    p_runnext: "runtime.p" => ["runnext"],
    /// `sched.nmidle`: idle Ms waiting for work.
    sched_nmidle: "runtime.schedt" => ["nmidle"],
    /// `sched.nmsys`: system Ms not counted for deadlock detection.
    sched_nmsys: "runtime.schedt" => ["nmsys"],
    /// `sched.npidle`: idle Ps (atomic.Int32 since 1.20).
    sched_npidle: "runtime.schedt" => ["npidle"],
    /// `sched.nmspinning`: spinning Ms (atomic.Int32 since 1.20).
    sched_nmspinning: "runtime.schedt" => ["nmspinning"],
    /// Length of the global run queue: `sched.runqsize` up to Go 1.24, `sched.runq.size` since.
    sched_runqsize: "runtime.schedt" => ["runqsize", "runq.size"],
    /// Data pointer of the `runtime.allgs` slice (`[]*g`).
    allgs_array: "[]*runtime.g" => ["array"],
    /// Length of the `runtime.allgs` slice.
    allgs_len: "[]*runtime.g" => ["len"],
    /// `m.alllink`: the next M on the `runtime.allm` list (nil after the last).
    m_alllink: "runtime.m" => ["alllink"],
    /// `sched.goidgen`: goroutine ids handed out so far (no live goid exceeds it).
    sched_goidgen: "runtime.schedt" => ["goidgen"],
    /// `sched.mnext`: Ms created so far, also the next M id.
    sched_mnext: "runtime.schedt" => ["mnext"],
    /// `sched.nmfreed`: Ms freed so far (`mnext - nmfreed` is what schedtrace calls threads).
    sched_nmfreed: "runtime.schedt" => ["nmfreed"],
    /// `sched.timeToRun.counts`: the scheduling-latency histogram's buckets; a goroutine's
    /// every 8th switch out of running is counted in one when it next runs.
    sched_timetorun_counts: "runtime.schedt" => ["timeToRun.counts"],
    /// `sched.timeToRun.underflow`: that histogram's negative latencies, counted apart.
    sched_timetorun_underflow: "runtime.schedt" => ["timeToRun.underflow"],
}
