//! `Snapshot`: every series of a registry read at one moment, as plain data.
//!
//! This module owns the snapshot's JSON shape and the one flattening of series into numeric
//! metrics ([`Snapshot::metrics`]) that every consumer uses: the watchdog, the recording, the
//! `metrics` facade bridge and the StatsD exporter. Names are dot-separated and
//! Graphite-friendly: `<metric>.<series name>`, e.g. `live.presence.Watch`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::counter::BatchReader;
use crate::finding::ScopeFinding;
use crate::memory::Memory;
use crate::registry::Registry;
use crate::series::{Detail, Series, SeriesKind, SeriesName, SeriesSnapshot};
use crate::site::Site;

/// Reading a registry: the one place a [`Snapshot`] is built from counters.
impl Registry {
    /// Every series of this registry, read now, with the creation sites of live items.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_with(Detail::WithSites)
    }

    /// Like [`snapshot`](Self::snapshot) without creation sites: cheaper, for code that reads
    /// every series often (samplers, exporters).
    pub fn snapshot_counts(&self) -> Snapshot {
        self.snapshot_with(Detail::CountsOnly)
    }

    /// Like [`snapshot_counts`](Self::snapshot_counts), read into `snapshot` instead of a new
    /// one, reusing its memory: for code that reads every series each tick (the watchdog, the
    /// StatsD exporter). When `snapshot` is this registry's previous reading and no series
    /// was added since, each series' counts are updated in place, so a tick allocates and
    /// frees nothing per series; otherwise it is refilled from scratch. The result equals
    /// what [`snapshot_counts`](Self::snapshot_counts) would return now.
    ///
    /// ```
    /// let reg = leakwatch::Registry::new();
    /// let job = leakwatch::Token::new_in(&reg, "jobs");
    /// let mut snap = reg.snapshot_counts();
    /// drop(job);
    /// reg.snapshot_counts_into(&mut snap);
    /// assert_eq!(snap.get("jobs").map(|s| (s.live, s.dropped)), Some((0, 1)));
    /// ```
    pub fn snapshot_counts_into(&self, snapshot: &mut Snapshot) {
        let reader = BatchReader::new();
        let others = self.others(&reader);
        let ordered = self.ordered_series();
        let same_registry = snapshot
            .registry
            .as_ref()
            .is_some_and(|r| Arc::ptr_eq(&r.inner, &self.inner));
        if same_registry && refill(&mut snapshot.series, &ordered, &others, &reader) {
            snapshot.taken_at_ms = now_ms();
            snapshot.memory = self.memory();
            snapshot.findings = self.inner.findings.recent();
            return;
        }
        let reuse = std::mem::take(&mut snapshot.series);
        *snapshot = self.build(reuse, &reader, Detail::CountsOnly, &ordered, others);
    }

    fn snapshot_with(&self, detail: Detail) -> Snapshot {
        let reader = BatchReader::new();
        let others = self.others(&reader);
        self.build(Vec::new(), &reader, detail, &self.ordered_series(), others)
    }

    /// A snapshot of `ordered` (the registry's series) and `others`, built in `series`
    /// (emptied first, its memory reused).
    fn build(
        &self,
        mut series: Vec<SeriesSnapshot>,
        reader: &BatchReader,
        detail: Detail,
        ordered: &[Arc<Series>],
        others: Vec<SeriesSnapshot>,
    ) -> Snapshot {
        let now = Instant::now();
        // The registry keeps its series by (name, kind), the snapshot's order: they need no
        // sorting, which for 10 000 series cost more than reading their counters. Room for
        // the others is made now, so merging them in never moves the whole vector.
        series.clear();
        series.reserve(ordered.len() + others.len());
        series.extend(ordered.iter().map(|s| s.snapshot(reader, now, detail)));
        Snapshot::assemble(
            self.clone(),
            series,
            others,
            self.memory(),
            self.inner.findings.recent(),
        )
    }

    /// The series a snapshot reads besides the registry's own: `#[tracked]` types (global
    /// registry only) and gauges, sorted by (name, kind), those with one key summed.
    fn others(&self, reader: &BatchReader) -> Vec<SeriesSnapshot> {
        let mut others = Vec::new();
        if self.inner.global {
            let types = crate::tracked::types();
            others.extend(types.iter().map(|t| t.snapshot(reader)));
        }
        others.extend(self.inner.gauges.read());
        others.sort_by(|a, b| key(a).cmp(&key(b)));
        // Two #[tracked] types can end up with one name (same ident in two fn bodies of a
        // module, or the same `name =`): they are one series here, summed, so `get` and `diff`
        // lose neither. Peak becomes the sum of peaks, an upper bound.
        others.dedup_by(|later, first| {
            if key(later) != key(first) {
                return false;
            }
            merge_series(first, later);
            true
        });
        others
    }

    /// Process memory: read for the global registry only.
    fn memory(&self) -> Memory {
        if self.inner.global {
            Memory::read()
        } else {
            Memory::default()
        }
    }
}

/// Updates `series`, an earlier snapshot's, in place to the counts of `ordered` (the
/// registry's series) merged with `others` (sorted, one per key), if it has exactly that
/// shape: the registry's series in the same places, recognised by their shared name without
/// reading it, and each other where the order puts it. Returns false, with `series` partly
/// updated, when the shape differs (a series or gauge was added or removed, a gauge shares a
/// registry series' key, the owner changed the vector): the caller then rebuilds it.
fn refill(
    series: &mut [SeriesSnapshot],
    ordered: &[Arc<Series>],
    others: &[SeriesSnapshot],
    reader: &BatchReader,
) -> bool {
    if series.len() != ordered.len() + others.len() {
        return false;
    }
    let mut ordered = ordered.iter().peekable();
    let mut others = others.iter();
    for p in 0..series.len() {
        match ordered.peek() {
            // One name per series: the same name is the same series, of the same kind.
            Some(s) if series[p].name.same(&s.name) => {
                s.read_into(reader, &mut series[p]);
                ordered.next();
            }
            _ => {
                // Names are read only here, next to the few others (tracked types, gauges).
                let Some(other) = others.next() else {
                    return false;
                };
                let in_order = key(&series[p]) == key(other)
                    && (p == 0 || key(&series[p - 1]) < key(other))
                    && ordered
                        .peek()
                        .is_none_or(|s| key(other) < (s.name.as_str(), s.kind));
                if !in_order {
                    return false;
                }
                let slot = &mut series[p];
                slot.created = other.created;
                slot.dropped = other.dropped;
                slot.live = other.live;
                slot.peak = other.peak;
                slot.live_bytes = other.live_bytes;
                slot.extra.clone_from(&other.extra);
                slot.sites.clone_from(&other.sites);
            }
        }
    }
    true
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether a flattened metric is a level or a running total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// A level that can go up and down (live counts, bytes): export as a gauge, set.
    Gauge,
    /// A monotonic total (created, dropped, delivered): export deltas as a counter.
    Counter,
}

/// Which series (or process memory) a flattened metric belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Group<'a> {
    Series(SeriesKind, &'a SeriesName),
    Memory,
}

/// A flattened metric name in two parts, formatted as `<metric>.<series>`.
#[derive(Clone, Copy)]
struct MetricName<'a> {
    metric: &'a str,
    series: &'a str,
    /// The part that varies within its group (the metric, or for process memory the series)
    /// when it is one of the fixed parts: then a slot recognises it by one byte, reading no
    /// text.
    fixed: Option<Part>,
}

/// The name parts every series or process memory flattens to, all but the per-kind totals
/// (`delivered`, `closed_aborted`, ..., which snapshots carry as strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Live,
    Peak,
    Created,
    Dropped,
    Bytes,
    Count,
    ResidentBytes,
    HeapBytes,
    Allocations,
    Deallocations,
}

impl Part {
    fn as_str(self) -> &'static str {
        match self {
            Part::Live => "live",
            Part::Peak => "peak",
            Part::Created => "created",
            Part::Dropped => "dropped",
            Part::Bytes => "bytes",
            Part::Count => "count",
            Part::ResidentBytes => "resident_bytes",
            Part::HeapBytes => "heap_bytes",
            Part::Allocations => "allocations",
            Part::Deallocations => "deallocations",
        }
    }
}

impl MetricName<'_> {
    /// Whether `full` is this name formatted, without formatting it.
    fn matches(&self, full: &str) -> bool {
        full.len() == self.metric.len() + 1 + self.series.len()
            && full.starts_with(self.metric)
            && full.ends_with(self.series)
            && full.as_bytes()[self.metric.len()] == b'.'
    }

    /// Like [`matches`](Self::matches) for a `full` name already known to belong to this
    /// name's group (`<any metric>.<this series>`, or `memory.<any>` for process memory):
    /// only the part that varies within the group is compared, a few bytes instead of the
    /// whole name, for each of a tick's ~40 000 metrics.
    fn matches_in_group(&self, full: &str, memory: bool) -> bool {
        full.len() == self.metric.len() + 1 + self.series.len()
            && if memory {
                full.ends_with(self.series)
            } else {
                full.starts_with(self.metric)
            }
    }
}

impl fmt::Display for MetricName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.metric, self.series)
    }
}

/// Interned metric names, so that a sampler flattens a snapshot every tick without formatting
/// or allocating a name per metric, and can keep per-metric state in vectors indexed by id.
///
/// ```
/// let reg = leakwatch::Registry::new();
/// let _t = leakwatch::Token::new_in(&reg, "jobs");
/// let mut names = leakwatch::MetricNames::new();
/// let flat = names.flatten(&reg.snapshot());
/// let live = flat.iter().find(|m| m.name == "live.jobs").unwrap();
/// assert_eq!(live.value, 1.0);
/// ```
#[derive(Debug, Default)]
pub struct MetricNames {
    /// Each group (a series, or process memory), in the order first seen.
    groups: Vec<GroupIds>,
    /// Every group's metric slots, a group's side by side: a tick reads them in one pass
    /// through one buffer. A separate vector per group cost a cache miss per series, the
    /// largest part of interning 10 000 series.
    slots: Vec<Slot>,
    /// Slots no group uses any more (left behind when a group grew and moved).
    dead_slots: usize,
    /// Group position by series kind and name; memory is found by `memory`.
    index: HashMap<SeriesKind, HashMap<String, usize>>,
    memory: Option<usize>,
    /// Every interned name, back to back: a tick's name checks read one buffer in order
    /// instead of ~40 000 separate allocations.
    text: String,
    /// Per id: where its name is in `text` (start, end), and its kind.
    names: Vec<(usize, usize, MetricKind)>,
    /// Set once two series (of different kinds) flattened to one name and share its id:
    /// from then on `flatten` sums values per id.
    shared_ids: bool,
    /// The (id, value) pairs of the last flattening, kept so that a tick reuses the buffer
    /// instead of allocating ~40 000 entries anew.
    scratch: Vec<(u32, MetricKind, u64)>,
    /// Which table this is: ids mean something only within one table.
    table: TableId,
}

/// Tells interning tables apart (see [`MetricNames::table`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableId(u64);

impl Default for TableId {
    fn default() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        TableId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

#[derive(Debug)]
struct GroupIds {
    kind: Option<SeriesKind>,
    /// The series name (`None` for process memory), shared with the registry, so that the
    /// same series is recognised by pointer without reading its text.
    name: Option<SeriesName>,
    /// Where the group's slots are in [`MetricNames::slots`]: `len` in use out of `cap`
    /// reserved from `start`.
    start: u32,
    len: u32,
    cap: u32,
}

impl GroupIds {
    /// Where the slots in use are in [`MetricNames::slots`].
    fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

/// One metric of a group as last seen (8 bytes): its id and kind, and its varying name part
/// if that was a fixed one ([`MetricName::fixed`]).
#[derive(Debug, Clone, Copy)]
struct Slot {
    id: u32,
    kind: MetricKind,
    fixed: Option<Part>,
}

impl Slot {
    /// Whether `name` is this slot's metric, known from fixed parts alone; `None` when only
    /// the text can tell.
    fn same_fixed(&self, name: &MetricName<'_>) -> Option<bool> {
        match (self.fixed, name.fixed) {
            (Some(a), Some(b)) => Some(a == b),
            _ => None,
        }
    }
}

/// One metric of [`MetricNames::flatten`]: an interned name with its value now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlatMetric<'a> {
    /// Stable small integer for this name (dense from 0), for per-metric state in vectors.
    pub id: u32,
    /// The metric name, e.g. `live.presence.Watch`.
    pub name: &'a str,
    /// Current value.
    pub value: f64,
    /// Gauge or counter.
    pub kind: MetricKind,
}

impl MetricNames {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct names seen.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name was seen yet.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of `id`.
    pub fn name(&self, id: u32) -> &str {
        let (start, end, _) = self.names[id as usize];
        &self.text[start..end]
    }

    /// Interns `name` as a new id.
    fn push_name(&mut self, name: MetricName<'_>, kind: MetricKind) -> u32 {
        let start = self.text.len();
        let _ = write!(self.text, "{name}");
        self.names.push((start, self.text.len(), kind));
        (self.names.len() - 1) as u32
    }

    /// The position of `group` in `groups`, trying `guess` first; created if new.
    fn find_group(&mut self, group: Group<'_>, guess: usize) -> usize {
        let (kind, name) = match group {
            Group::Series(k, n) => (Some(k), Some(n)),
            Group::Memory => (None, None),
        };
        if let Some(g) = self.groups.get(guess)
            && g.kind == kind
            && match (&g.name, name) {
                (Some(a), Some(b)) => a.same(b) || a == b,
                (a, b) => a.is_none() && b.is_none(),
            }
        {
            return guess;
        }
        let found = match (kind, name) {
            (Some(k), Some(n)) => self.index.get(&k).and_then(|m| m.get(n.as_str())).copied(),
            _ => self.memory,
        };
        if let Some(pos) = found {
            return pos;
        }
        let pos = self.groups.len();
        self.groups.push(GroupIds {
            kind,
            name: name.cloned(),
            start: self.slots.len() as u32,
            len: 0,
            cap: 0,
        });
        match (kind, name) {
            (Some(k), Some(n)) => {
                self.index.entry(k).or_default().insert(n.to_string(), pos);
            }
            _ => self.memory = Some(pos),
        }
        pos
    }

    /// The id of `name` if a series of another kind with the same series name already has it:
    /// a Token "jobs" and a Connections "jobs" both flatten to `live.jobs`, which must stay
    /// one metric (one value per tick for detectors, one gauge for exporters).
    fn same_name_elsewhere(&self, group: Group<'_>, g: usize, name: MetricName<'_>) -> Option<u32> {
        let Group::Series(kind, series) = group else {
            return None;
        };
        self.index
            .iter()
            .filter(|(k, _)| **k != kind)
            .filter_map(|(_, by_name)| by_name.get(series.as_str()))
            .filter(|&&pos| pos != g)
            .flat_map(|&pos| self.group_slots(pos).iter().map(|s| s.id))
            .find(|&id| name.matches(self.name(id)))
    }

    /// Every metric of `snapshot`, the same as [`Snapshot::metrics`] but with interned names.
    pub fn flatten(&mut self, snapshot: &Snapshot) -> Vec<FlatMetric<'_>> {
        self.intern(snapshot);
        let this = &*self;
        this.scratch
            .iter()
            .map(|&(id, _, value)| this.flat(id, value))
            .collect()
    }

    /// Calls `f` with every metric of `snapshot`, in [`flatten`](Self::flatten)'s order,
    /// without collecting them: once the names are known, a call allocates nothing.
    ///
    /// ```
    /// let reg = leakwatch::Registry::new();
    /// let _t = leakwatch::Token::new_in(&reg, "jobs");
    /// let mut names = leakwatch::MetricNames::new();
    /// let mut live = 0.0;
    /// names.flatten_each(&reg.snapshot(), |m| {
    ///     if m.name == "live.jobs" {
    ///         live = m.value;
    ///     }
    /// });
    /// assert_eq!(live, 1.0);
    /// ```
    pub fn flatten_each(&mut self, snapshot: &Snapshot, mut f: impl FnMut(FlatMetric<'_>)) {
        self.intern(snapshot);
        for &(id, _, value) in &self.scratch {
            f(self.flat(id, value));
        }
    }

    /// Which table this is: the ids of one table mean nothing in another.
    pub(crate) fn table(&self) -> TableId {
        self.table
    }

    /// The (id, kind, value) of every metric of the last [`intern`](Self::intern): for
    /// consumers that keep per-id state and need a metric's name only the first time they
    /// see its id.
    pub(crate) fn interned(&self) -> &[(u32, MetricKind, u64)] {
        &self.scratch
    }

    /// The metric `id` with `value`.
    fn flat(&self, id: u32, value: u64) -> FlatMetric<'_> {
        FlatMetric {
            id,
            name: self.name(id),
            value: value as f64,
            kind: self.names[id as usize].2,
        }
    }

    /// Interns every metric name of `snapshot` and leaves its (id, value) pairs in `scratch`
    /// ([`interned`](Self::interned)), one per id.
    pub(crate) fn intern(&mut self, snapshot: &Snapshot) {
        let mut ids = std::mem::take(&mut self.scratch);
        ids.clear();
        ids.reserve(snapshot.series.len() * 4 + 4);
        // The position in `groups` of the group being visited.
        let mut g = 0usize;
        let mut next_group = 0usize;
        snapshot.visit_metrics(|group, pos, name, value, kind| {
            if pos == 0 {
                // Series come sorted and rarely change, so the group after the previous one
                // is almost always the right one: one string comparison, no hashing.
                g = self.find_group(group, next_group);
                next_group = g + 1;
            }
            let known = self.group_slots(g).get(pos).copied().filter(|slot| {
                slot.same_fixed(&name).unwrap_or_else(|| {
                    name.matches_in_group(self.name(slot.id), group == Group::Memory)
                })
            });
            let (id, kind) = match known {
                Some(slot) => (slot.id, slot.kind),
                None => {
                    let id = match self.same_name_elsewhere(group, g, name) {
                        Some(id) => {
                            self.shared_ids = true;
                            id
                        }
                        None => self.push_name(name, kind),
                    };
                    let kind = self.names[id as usize].2;
                    self.set_slot(
                        g,
                        pos,
                        Slot {
                            id,
                            kind,
                            fixed: name.fixed,
                        },
                    );
                    (id, kind)
                }
            };
            ids.push((id, kind, value));
        });
        if self.shared_ids {
            ids = sum_per_id(ids);
        }
        self.scratch = ids;
        if self.dead_slots > 1024 && self.dead_slots > self.slots.len() / 2 {
            self.compact_slots();
        }
    }

    /// The slots of group `g` in use.
    fn group_slots(&self, g: usize) -> &[Slot] {
        &self.slots[self.groups[g].range()]
    }

    /// Makes `slot` the group's `pos`-th (at most one past its last) and its last: a
    /// metric that changed at `pos` ends what was known of the group after it.
    fn set_slot(&mut self, g: usize, pos: usize, slot: Slot) {
        let pos = pos as u32;
        let grp = &mut self.groups[g];
        debug_assert!(pos <= grp.len);
        if pos == grp.cap {
            let end = (grp.start + grp.cap) as usize;
            if end == self.slots.len() {
                // The group's slots are the last ones: they grow in place.
                self.slots.push(slot);
            } else {
                // Moved to the end; its old place is dead until the next compaction.
                let start = self.slots.len();
                self.slots.extend_from_within(grp.range());
                self.slots.push(slot);
                self.dead_slots += grp.cap as usize;
                grp.start = start as u32;
            }
            grp.cap = pos + 1;
        } else {
            self.slots[(grp.start + pos) as usize] = slot;
        }
        grp.len = pos + 1;
    }

    /// Rewrites the slots without the dead ones, groups in order, each with no spare room.
    fn compact_slots(&mut self) {
        let mut slots = Vec::with_capacity(self.slots.len() - self.dead_slots);
        for grp in &mut self.groups {
            let start = slots.len() as u32;
            slots.extend_from_slice(&self.slots[grp.range()]);
            grp.start = start;
            grp.cap = grp.len;
        }
        self.slots = slots;
        self.dead_slots = 0;
    }
}

/// The order of a snapshot's series: by name, then kind.
fn key(s: &SeriesSnapshot) -> (&str, SeriesKind) {
    (s.name.as_str(), s.kind)
}

/// Adds the counts of `later`, a series of the same name and kind, to `first`.
fn merge_series(first: &mut SeriesSnapshot, later: &mut SeriesSnapshot) {
    first.created += later.created;
    first.dropped += later.dropped;
    first.live += later.live;
    first.peak += later.peak;
    first.live_bytes = match (first.live_bytes, later.live_bytes) {
        (Some(a), Some(b)) => Some(a + b),
        _ => None,
    };
    for (k, v) in std::mem::take(&mut later.extra) {
        *first.extra.entry(k).or_default() += v;
    }
    first.sites.append(&mut later.sites);
}

/// Sums the values of repeated ids, keeping each id's first position.
fn sum_per_id(ids: Vec<(u32, MetricKind, u64)>) -> Vec<(u32, MetricKind, u64)> {
    let mut at: HashMap<u32, usize> = HashMap::with_capacity(ids.len());
    let mut out: Vec<(u32, MetricKind, u64)> = Vec::with_capacity(ids.len());
    for (id, kind, value) in ids {
        match at.get(&id) {
            Some(&i) => out[i].2 += value,
            None => {
                at.insert(id, out.len());
                out.push((id, kind, value));
            }
        }
    }
    out
}

/// One flattened numeric metric of a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Dot-separated name, e.g. `live.presence.Watch`.
    pub name: String,
    /// Current value.
    pub value: f64,
    /// Gauge or counter.
    pub kind: MetricKind,
}

/// Every series of a registry, read at one moment. Serialises to JSON with serde, prints as a
/// table with `{}`, and compares with [`Snapshot::diff`].
#[derive(Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Milliseconds since the Unix epoch when the snapshot was taken.
    pub taken_at_ms: u64,
    /// Every series, sorted by name then kind.
    pub series: Vec<SeriesSnapshot>,
    /// Process memory (global registry only).
    pub memory: Memory,
    /// Recent scope findings (late registrations, outlived scopes), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<ScopeFinding>,
    #[serde(skip)]
    pub(crate) registry: Option<Registry>,
    /// The table this snapshot was just interned with, lent by the watchdog to its sample
    /// consumers for the length of their call, so that an exporter reuses the interning
    /// instead of doing it again.
    #[serde(skip)]
    pub(crate) lent_names: LentNames,
}

/// A [`MetricNames`] lent with a snapshot (see [`Snapshot::lent_names`]): never cloned,
/// compared or printed with it.
#[derive(Default)]
pub(crate) struct LentNames(pub(crate) Option<MetricNames>);

impl Clone for LentNames {
    fn clone(&self) -> Self {
        LentNames(None)
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("taken_at_ms", &self.taken_at_ms)
            .field("series", &self.series)
            .field("memory", &self.memory)
            .field("findings", &self.findings)
            .finish()
    }
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.taken_at_ms == other.taken_at_ms
            && self.series == other.series
            && self.memory == other.memory
            && self.findings == other.findings
    }
}

impl Snapshot {
    /// The table this snapshot was just interned with, when a watchdog lends it to its
    /// sample consumers: its [`interned`](MetricNames::interned) ids and values are this
    /// snapshot's.
    pub(crate) fn lent_names(&self) -> Option<&MetricNames> {
        self.lent_names.0.as_ref()
    }

    /// A snapshot of nothing, from no registry: a place to read into
    /// ([`Registry::snapshot_counts_into`] fills it on first use).
    pub(crate) fn empty() -> Snapshot {
        Snapshot {
            taken_at_ms: 0,
            series: Vec::new(),
            memory: Memory::default(),
            findings: Vec::new(),
            registry: None,
            lent_names: LentNames::default(),
        }
    }

    /// A snapshot of `sorted` (the registry's series: sorted by name then kind, each once)
    /// and `others` (tracked types and gauges, sorted the same way, each key once).
    pub(crate) fn assemble(
        registry: Registry,
        sorted: Vec<SeriesSnapshot>,
        mut others: Vec<SeriesSnapshot>,
        memory: Memory,
        findings: Vec<ScopeFinding>,
    ) -> Snapshot {
        debug_assert!(sorted.is_sorted_by(|a, b| key(a) < key(b)));
        debug_assert!(others.is_sorted_by(|a, b| key(a) < key(b)));
        let mut series = sorted;
        // Merged in place: each other is placed by binary search and the registry's series
        // move at most once, with no comparison between them and no second vector (copying
        // 10 000 series into fresh memory cost more in page faults than the sort it replaced).
        // Many others (more than tracked types and gauges usually make) are sorted in instead.
        const MERGE_AT_MOST: usize = 64;
        if others.len() > MERGE_AT_MOST {
            series.append(&mut others);
            series.sort_by(|a, b| key(a).cmp(&key(b)));
            series.dedup_by(|later, first| {
                key(later) == key(first) && {
                    merge_series(first, later);
                    true
                }
            });
        } else {
            let mut starts = Vec::with_capacity(others.len());
            others.retain_mut(|other| {
                let at = series.partition_point(|s| key(s) < key(other));
                match series.get_mut(at) {
                    Some(same) if key(same) == key(other) => {
                        merge_series(same, other);
                        false
                    }
                    _ => {
                        starts.push(at);
                        true
                    }
                }
            });
            let n = series.len();
            series.append(&mut others);
            // Block j of the registry's series (from starts[j] to starts[j + 1]) moves right
            // by j + 1, past the others 0..=j, which sit right after it.
            for j in (0..starts.len()).rev() {
                let end = starts.get(j + 1).map_or(n, |&next| next) + j + 1;
                series[starts[j]..end].rotate_right(j + 1);
            }
        }
        Snapshot {
            taken_at_ms: now_ms(),
            series,
            memory,
            findings,
            registry: Some(registry),
            lent_names: LentNames::default(),
        }
    }

    /// The series called `name` (the first by kind order if several kinds share a name).
    pub fn get(&self, name: &str) -> Option<&SeriesSnapshot> {
        let i = self.series.partition_point(|s| s.name.as_str() < name);
        self.series.get(i).filter(|s| s.name == name)
    }

    /// The series called `name` of `kind`.
    pub fn get_kind(&self, name: &str, kind: SeriesKind) -> Option<&SeriesSnapshot> {
        self.series
            .iter()
            .find(|s| s.name == name && s.kind == kind)
    }

    /// Live count of `name`, 0 if unknown.
    pub fn live(&self, name: &str) -> u64 {
        self.get(name).map_or(0, |s| s.live)
    }

    /// The registry this snapshot was read from (None once deserialised).
    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
    }

    /// Every value of this snapshot as flat, dot-separated metrics:
    ///
    /// | metric | kind | for |
    /// |---|---|---|
    /// | `live.<name>` | gauge | every series |
    /// | `peak.<name>` | gauge | every series |
    /// | `created.<name>`, `dropped.<name>` | counter | every series |
    /// | `bytes.<name>` | gauge | tracked types |
    /// | `delivered.<name>`, `emitted.<name>` | counter | callback registries |
    /// | `closed_normal.<name>` … `closed_error.<name>`, `reaped.<name>` | counter | connections |
    /// | `late.<name>`, `outlived.<name>` | counter | scopes |
    /// | `count.<name>` (only this) | counter | event counters |
    /// | `live.<name>` (only this) | gauge | sampled gauges ([`Registry::gauge`]) |
    /// | `memory.resident_bytes`, `memory.heap_bytes` | gauge | process |
    /// | `memory.allocations`, `memory.deallocations` | counter | process (counting allocator) |
    ///
    /// Series of different kinds with one name (a token and a connection tracker both called
    /// `jobs`) share their common metrics: `live.jobs` is then the sum of both, once.
    pub fn metrics(&self) -> Vec<Metric> {
        // One merge rule for both paths: a throwaway interning table does it.
        MetricNames::new()
            .flatten(self)
            .into_iter()
            .map(|m| Metric {
                name: m.name.to_owned(),
                value: m.value,
                kind: m.kind,
            })
            .collect()
    }

    /// Calls `f(group, position, name, value, kind)` for every flattened metric, in a fixed
    /// order per group (a series, or process memory); `position` is the metric's place in
    /// its group (0 starts a new group). The one place metric names are decided.
    fn visit_metrics<'a>(
        &'a self,
        mut f: impl FnMut(Group<'a>, usize, MetricName<'a>, u64, MetricKind),
    ) {
        for s in &self.series {
            let g = Group::Series(s.kind, &s.name);
            let mut pos = 0;
            let mut f = |name, value, kind| {
                f(g, pos, name, value, kind);
                pos += 1;
            };
            let name = |part: Part| MetricName {
                metric: part.as_str(),
                series: &s.name,
                fixed: Some(part),
            };
            if s.kind == SeriesKind::Counter {
                f(name(Part::Count), s.created, MetricKind::Counter);
                continue;
            }
            if s.kind == SeriesKind::Gauge {
                f(name(Part::Live), s.live, MetricKind::Gauge);
                continue;
            }
            f(name(Part::Live), s.live, MetricKind::Gauge);
            f(name(Part::Peak), s.peak, MetricKind::Gauge);
            f(name(Part::Created), s.created, MetricKind::Counter);
            f(name(Part::Dropped), s.dropped, MetricKind::Counter);
            if let Some(b) = s.live_bytes {
                f(name(Part::Bytes), b, MetricKind::Gauge);
            }
            for (k, v) in &s.extra {
                let name = MetricName {
                    metric: k,
                    series: &s.name,
                    fixed: None,
                };
                f(name, *v, MetricKind::Counter);
            }
        }
        let m = &self.memory;
        let mut pos = 0;
        let mut f = |name, value, kind| {
            f(Group::Memory, pos, name, value, kind);
            pos += 1;
        };
        let mem = |part: Part| MetricName {
            metric: "memory",
            series: part.as_str(),
            fixed: Some(part),
        };
        if let Some(v) = m.resident_bytes {
            f(mem(Part::ResidentBytes), v, MetricKind::Gauge);
        }
        if let Some(h) = &m.heap {
            f(mem(Part::HeapBytes), h.live_bytes, MetricKind::Gauge);
            f(mem(Part::Allocations), h.allocations, MetricKind::Counter);
            f(
                mem(Part::Deallocations),
                h.deallocations,
                MetricKind::Counter,
            );
        }
    }

    /// What changed since `earlier`: per series, the change of live, created and dropped.
    /// Series that appeared since count from zero; series that vanished count to zero.
    pub fn diff(&self, earlier: &Snapshot) -> SnapshotDiff {
        let key = |s: &SeriesSnapshot| (s.name.clone(), s.kind);
        let before: BTreeMap<_, _> = earlier.series.iter().map(|s| (key(s), s)).collect();
        let after: BTreeMap<_, _> = self.series.iter().map(|s| (key(s), s)).collect();
        let mut keys: Vec<_> = before.keys().chain(after.keys()).cloned().collect();
        keys.sort();
        keys.dedup();
        let changes = keys
            .into_iter()
            .filter_map(|k| {
                let b = before.get(&k).map(|s| s.counts()).unwrap_or_default();
                let a = after.get(&k).map(|s| s.counts()).unwrap_or_default();
                let change = SeriesChange {
                    name: k.0.to_string(),
                    kind: k.1,
                    live: a.live as i64 - b.live as i64,
                    created: a.created.saturating_sub(b.created),
                    dropped: a.dropped.saturating_sub(b.dropped),
                    live_now: a.live,
                    sites: after.get(&k).map(|s| s.sites.clone()).unwrap_or_default(),
                };
                (change.live != 0 || change.created != 0 || change.dropped != 0).then_some(change)
            })
            .collect();
        SnapshotDiff {
            elapsed_ms: self.taken_at_ms.saturating_sub(earlier.taken_at_ms),
            changes,
        }
    }
}

/// The change of one series between two snapshots.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesChange {
    /// Series name.
    pub name: String,
    /// Series kind.
    pub kind: SeriesKind,
    /// Change of the live count (positive: grew).
    pub live: i64,
    /// Items created in between.
    pub created: u64,
    /// Items dropped in between.
    pub dropped: u64,
    /// Live count in the later snapshot.
    pub live_now: u64,
    /// Creation sites with live items in the later snapshot.
    pub sites: Vec<Site>,
}

/// The result of [`Snapshot::diff`]: only series that changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotDiff {
    /// Milliseconds between the two snapshots.
    pub elapsed_ms: u64,
    /// Series that changed, by name.
    pub changes: Vec<SeriesChange>,
}

impl SnapshotDiff {
    /// Series whose live count grew: the candidates for a leak. Event counters are left out
    /// (see [`SeriesKind::has_live_items`]) but stay in [`changes`](Self::changes).
    pub fn grown(&self) -> impl Iterator<Item = &SeriesChange> {
        self.changes
            .iter()
            .filter(|c| c.live > 0 && c.kind.has_live_items())
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

impl fmt::Display for SnapshotDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<40} {:<12} {:>10} {:>10} {:>10}",
            "series", "kind", "Δlive", "created", "dropped"
        )?;
        for c in &self.changes {
            writeln!(
                f,
                "{:<40} {:<12} {:>+10} {:>10} {:>10}",
                c.name,
                c.kind.as_str(),
                c.live,
                c.created,
                c.dropped
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Snapshot {
    /// A readable table: one row per series, then process memory.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<40} {:<12} {:>10} {:>10} {:>12} {:>12}",
            "series", "kind", "live", "peak", "created", "dropped"
        )?;
        for s in &self.series {
            let extra: Vec<String> = s
                .extra
                .iter()
                .filter(|(_, v)| **v > 0)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            writeln!(
                f,
                "{:<40} {:<12} {:>10} {:>10} {:>12} {:>12}{}",
                s.name,
                s.kind.as_str(),
                s.live,
                s.peak,
                s.created,
                s.dropped,
                if extra.is_empty() {
                    String::new()
                } else {
                    format!("  {}", extra.join(" "))
                }
            )?;
        }
        if let Some(r) = self.memory.resident_bytes {
            writeln!(
                f,
                "{:<40} {:<12} {:>10}",
                "memory.resident_bytes", "memory", r
            )?;
        }
        if let Some(h) = &self.memory.heap {
            writeln!(
                f,
                "{:<40} {:<12} {:>10}",
                "memory.heap_bytes", "memory", h.live_bytes
            )?;
        }
        for finding in &self.findings {
            writeln!(f, "finding: {finding}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{EventCounter, Registry, Token};

    #[test]
    fn series_of_different_kinds_with_one_name_flatten_to_one_metric_each() {
        let reg = Registry::new();
        let _tokens = [Token::new_in(&reg, "jobs"), Token::new_in(&reg, "jobs")];
        let mut names = super::MetricNames::new();
        // Flattened once before the clash exists, so the clash is met by a table that has
        // already interned the token's names.
        assert_eq!(names.flatten(&reg.snapshot()).len(), 4);
        let conns = crate::Connections::new_in(&reg, "jobs");
        let _conn = conns.open(|| true);
        let snap = reg.snapshot();
        let by_name = |pairs: Vec<(String, f64)>| {
            let mut seen = std::collections::BTreeMap::new();
            for (n, v) in pairs {
                assert!(seen.insert(n.clone(), v).is_none(), "{n} twice");
            }
            seen
        };
        let plain = by_name(
            snap.metrics()
                .into_iter()
                .map(|m| (m.name, m.value))
                .collect(),
        );
        assert_eq!(plain["live.jobs"], 3.0);
        assert_eq!(plain["created.jobs"], 3.0);
        assert_eq!(plain["closed_normal.jobs"], 0.0);
        for _ in 0..2 {
            let flat = by_name(
                names
                    .flatten(&snap)
                    .iter()
                    .map(|m| (m.name.to_owned(), m.value))
                    .collect(),
            );
            assert_eq!(flat, plain, "flatten agrees with metrics()");
        }
    }

    /// A long-lived table whose groups grow (and so move), shrink and change agrees with a
    /// fresh one every tick, and keeps each surviving name's id: the slot bookkeeping
    /// (growing in place, moving, compacting) loses or confuses nothing.
    #[test]
    fn a_table_whose_series_grow_and_change_agrees_with_a_fresh_one() {
        use crate::series::{SeriesKind, SeriesSnapshot};
        let snapshot = |tick: u64, extras: &[&str]| {
            let mut snap = super::Snapshot::empty();
            for i in 0..3000u64 {
                // Tick 4 changes the odd series' last extra: a mismatch inside the group.
                let mut names = extras.to_vec();
                if tick == 4 && i % 2 == 1 {
                    *names.last_mut().unwrap() = "other";
                }
                snap.series.push(SeriesSnapshot {
                    name: format!("s{i:04}").into(),
                    kind: SeriesKind::Callbacks,
                    created: tick * 10 + i,
                    dropped: tick,
                    live: tick * 9 + i,
                    peak: tick * 9 + i,
                    live_bytes: None,
                    extra: names.iter().map(|n| ((*n).to_owned(), tick + i)).collect(),
                    sites: Vec::new(),
                });
            }
            snap
        };
        let mut names = super::MetricNames::new();
        let mut ids = std::collections::HashMap::new();
        let ticks: [&[&str]; 5] = [&["a"], &["a", "b"], &["a", "b", "c"], &["a", "b"], &["a"]];
        for (tick, extras) in ticks.iter().enumerate() {
            let snap = snapshot(tick as u64, extras);
            let fresh: Vec<(String, f64)> = snap
                .metrics()
                .into_iter()
                .map(|m| (m.name, m.value))
                .collect();
            let kept: Vec<(String, f64)> = names
                .flatten(&snap)
                .iter()
                .map(|m| {
                    let id = *ids.entry(m.name.to_owned()).or_insert(m.id);
                    assert_eq!(id, m.id, "{} changed id", m.name);
                    (m.name.to_owned(), m.value)
                })
                .collect();
            assert_eq!(kept, fresh, "tick {tick}");
        }
        // Growing moved most groups twice: the dead slots were compacted away at least once.
        assert!(names.slots.len() < 3000 * 8, "{} slots", names.slots.len());
    }

    #[test]
    fn registry_series_and_gauges_come_out_in_name_then_kind_order_with_clashes_summed() {
        let reg = Registry::new();
        // Created out of order, so the snapshot's order comes from the registry and the merge.
        let _tokens = [
            Token::new_in(&reg, "d"),
            Token::new_in(&reg, "b"),
            Token::new_in(&reg, "c"),
        ];
        let _events = EventCounter::new_in(&reg, "c");
        let _gauges = [
            reg.gauge("e", || Some(5)),
            reg.gauge("c", || Some(2)),
            reg.gauge("a", || Some(1)),
            reg.gauge("c", || Some(3)),
        ];
        let snap = reg.snapshot_counts();
        let order: Vec<(&str, crate::SeriesKind)> = snap
            .series
            .iter()
            .map(|s| (s.name.as_str(), s.kind))
            .collect();
        use crate::SeriesKind::{Counter, Gauge, Token as Tok};
        assert_eq!(
            order,
            [
                ("a", Gauge),
                ("b", Tok),
                ("c", Tok),
                ("c", Counter),
                ("c", Gauge),
                ("d", Tok),
                ("e", Gauge)
            ]
        );
        assert_eq!(snap.get_kind("c", Gauge).map(|s| s.live), Some(5));
        assert_eq!(snap.get("c").map(|s| s.kind), Some(Tok));
        // A series added after a snapshot is in the next one, in its place.
        let _late = Token::new_in(&reg, "bb");
        let names: Vec<String> = reg
            .snapshot_counts()
            .series
            .iter()
            .map(|s| s.name.to_string())
            .collect();
        assert_eq!(names, ["a", "b", "bb", "c", "c", "c", "d", "e"]);
    }

    #[test]
    fn gauges_merged_in_few_or_many_keep_the_order_and_every_value() {
        // Both ways of merging others in: placing a few, sorting many in.
        for gauges in [7usize, 70] {
            let reg = Registry::new();
            let name = |i: usize| format!("s{:03}", (i * 37) % 101);
            let _tokens: Vec<Token> = (0..50).map(|i| Token::new_in(&reg, &name(i))).collect();
            let _gauges: Vec<crate::Gauge> = (0..gauges)
                .map(|i| {
                    let v = i as u64 + 1;
                    reg.gauge(&name(i * 3 + 1), move || Some(v))
                })
                .collect();
            let snap = reg.snapshot_counts();
            let mut expected: Vec<(String, crate::SeriesKind)> = (0..50)
                .map(|i| (name(i), crate::SeriesKind::Token))
                .chain((0..gauges).map(|i| (name(i * 3 + 1), crate::SeriesKind::Gauge)))
                .collect();
            expected.sort();
            expected.dedup();
            let got: Vec<(String, crate::SeriesKind)> = snap
                .series
                .iter()
                .map(|s| (s.name.to_string(), s.kind))
                .collect();
            assert_eq!(got, expected, "{gauges} gauges");
            let gauge_total: u64 = snap
                .series
                .iter()
                .filter(|s| s.kind == crate::SeriesKind::Gauge)
                .map(|s| s.live)
                .sum();
            assert_eq!(
                gauge_total,
                (1..=gauges as u64).sum::<u64>(),
                "{gauges} gauges"
            );
        }
    }

    #[test]
    fn reading_into_an_earlier_snapshot_equals_a_fresh_one() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        let reg = Registry::new();
        let mut tokens: Vec<Token> = ["b", "d", "f"]
            .iter()
            .map(|n| Token::new_in(&reg, n))
            .collect();
        let conns = crate::Connections::new_in(&reg, "d");
        let _open = conns.open(|| true);
        // A gauge between the registry's series, and one that has a value only sometimes.
        let level = Arc::new(AtomicU64::new(1));
        let l = level.clone();
        let _c = reg.gauge("c", move || Some(l.load(Ordering::Relaxed)));
        let l = level.clone();
        let _e = reg.gauge("e", move || {
            (l.load(Ordering::Relaxed) % 2 == 1).then_some(7)
        });
        let mut snap = reg.snapshot_counts();
        let other = Registry::new();
        let _x = Token::new_in(&other, "x");
        let mut from_elsewhere = other.snapshot_counts();
        let same = |a: &super::Snapshot, b: &super::Snapshot| {
            assert_eq!(a.series, b.series);
            assert_eq!(a.memory, b.memory);
            assert_eq!(a.findings, b.findings);
        };
        for round in 0..6u64 {
            match round {
                1 => drop(tokens.pop()),
                2 => tokens.push(Token::new_in(&reg, "a")), // a new series: rebuilt
                3 => level.store(2, Ordering::Relaxed),     // gauge "e" has no value
                4 => {
                    level.store(3, Ordering::Relaxed);
                    conns.open(|| true).close(crate::CloseReason::Normal);
                }
                // Changed by its owner: put right again.
                5 => snap.series.reverse(),
                _ => {}
            }
            reg.snapshot_counts_into(&mut snap);
            same(&snap, &reg.snapshot_counts());
            reg.snapshot_counts_into(&mut from_elsewhere);
            same(&from_elsewhere, &snap);
        }
        assert_eq!(
            snap.get_kind("d", crate::SeriesKind::Connections)
                .map(|s| s.extra("closed_normal")),
            Some(1)
        );
        assert_eq!(
            snap.get_kind("c", crate::SeriesKind::Gauge).map(|s| s.live),
            Some(3)
        );
    }

    #[test]
    fn an_unchanged_shape_is_updated_in_place_and_a_changed_one_refused() {
        let reg = Registry::new();
        let _tokens = [Token::new_in(&reg, "b"), Token::new_in(&reg, "d")];
        let _gauge = reg.gauge("c", || Some(4));
        let mut snap = reg.snapshot_counts();
        let refill = |snap: &mut super::Snapshot| {
            let reader = crate::counter::BatchReader::new();
            let others = reg.others(&reader);
            super::refill(&mut snap.series, &reg.ordered_series(), &others, &reader)
        };
        let _more = Token::new_in(&reg, "b");
        assert!(refill(&mut snap), "same series and gauges: in place");
        assert_eq!(snap.series, reg.snapshot_counts().series);
        let _late = Token::new_in(&reg, "a");
        assert!(!refill(&mut snap), "a new series changes the shape");
        let mut snap = reg.snapshot_counts();
        snap.series.swap(1, 2); // the gauge out of its place
        assert!(!refill(&mut snap), "an other out of order");
    }

    #[test]
    fn event_counters_show_in_the_diff_but_never_grow() {
        let reg = Registry::new();
        let base = reg.snapshot();
        let requests = EventCounter::new_in(&reg, "requests");
        requests.add(3);
        let kept = Token::new_in(&reg, "kept");
        let diff = reg.snapshot().diff(&base);
        let names = |it: &mut dyn Iterator<Item = &super::SeriesChange>| {
            it.map(|c| c.name.clone()).collect::<Vec<_>>()
        };
        assert_eq!(names(&mut diff.changes.iter()), ["kept", "requests"]);
        assert_eq!(names(&mut diff.grown()), ["kept"]);
        drop(kept);
    }
}
