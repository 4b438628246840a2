// Recorder: appends events to a witness log from any thread without blocking it.
// record() only enqueues (bounded queue; when full the event is rejected and
// counted, and a witness_events_dropped record says how many at the next write);
// a writer thread encodes, chains and hashes the records, writes each batch with
// one write() and one fdatasync() (group commit), then marks it durable
// ("acknowledged"). A signed checkpoint is appended every N records, every T ms
// while records arrive, and at close.
//
// The file is reached through witness::Env (env.hpp). When the disk fails the
// process keeps running and nothing accepted is lost without a report
// (docs/witness-format.md, "When the disk fails"):
//  - write() fails with ENOSPC or EDQUOT: the short write is cut off, the batch
//    stays in memory and is retried every retry_interval; record() keeps
//    accepting until the queue is full (then rejects and counts, as always).
//    When a retry succeeds a witness_io_error record tells of the outage.
//  - any other write() error, and any fdatasync() error: the log is sealed.
//    After a failed fdatasync the kernel may have dropped the dirty pages, so a
//    retry could report success for data that is gone. Nothing more is written;
//    the accepted events that were not durable are counted (stats().lost) and
//    named in the error; record() rejects from then on.
// Each transition is reported to on_io_error, logged, and visible in stats().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "identity/identity.hpp"
#include "witness/env.hpp"
#include "witness/format.hpp"

namespace rtcmesh::witness {

struct RecorderStats {
  uint64_t accepted = 0;  // events queued by record()
  uint64_t rejected = 0;  // queue full or closed
  uint64_t durable = 0;   // accepted events written and synced
  uint64_t records = 0;   // records in the log (all kinds, including earlier runs)
  uint64_t batches = 0;
  uint64_t checkpoints = 0;
  uint64_t io_errors = 0;  // failed write/truncate/fdatasync calls
  bool retrying = false;   // the disk is full: the pending batch is being retried
  bool sealed = false;     // an I/O error ended writing (see io_error())
  uint64_t lost = 0;       // accepted events that never became durable (sealed)
};

// A change in the recorder's ability to write, for on_io_error.
struct IoProblem {
  enum class Kind {
    Retrying,   // write() found the disk full; the batch is kept and retried
    Recovered,  // a retry succeeded; everything kept is durable
    Sealed,     // the log takes no more records
  };
  Kind kind;
  int code = 0;              // errno of the failure (that of the outage for Recovered)
  std::string message;       // "write /x/witness.log: No space left on device; ..."
  uint64_t not_durable = 0;  // accepted events not durable at that moment (Sealed: lost)
  uint64_t io_errors = 0;    // failed calls so far (RecorderStats::io_errors)
};
const char* to_string(IoProblem::Kind kind);

struct RecorderOptions {
  size_t queue_capacity = 65536;
  size_t checkpoint_every = 10000;  // records
  std::chrono::milliseconds checkpoint_interval{5000};
  size_t max_batch = 8192;
  // Group commit window: after the first event of a batch the writer waits this
  // long for more before it writes and syncs (a full batch goes at once). It
  // bounds syncs and thread wake-ups per second; an event is still acknowledged
  // only once synced. 0 = write at once.
  std::chrono::microseconds commit_delay{2000};
  bool sync = true;  // fdatasync each batch (off only for benchmarks of the CPU path)
  // Called on the writer thread after each durable batch with the number of
  // accepted events now durable (tickets 0 .. n-1).
  std::function<void(uint64_t durable_events)> on_durable;
  // Called on the writer thread for each event once it is durable, with the time
  // from record() to durable: for witness_events_recorded_total{event_type} and
  // witness_recording_latency_seconds. Keep it cheap (a counter, a histogram).
  std::function<void(std::string_view event_type, std::chrono::microseconds latency)> on_recorded;
  // Called on the writer thread after each group commit: events in it (records
  // the writer added are not counted), the time write() + fdatasync() took, and
  // the counters as they stand after it.
  std::function<void(size_t events, std::chrono::microseconds write_sync,
                     const RecorderStats& after)>
      on_batch;
  // Called on the writer thread when writing starts failing, recovers, or ends
  // (see the top of this file). Also logged.
  std::function<void(const IoProblem&)> on_io_error;
  // How often a batch that found the disk full is retried.
  std::chrono::milliseconds retry_interval{1000};
  // The file system; null = Env::posix(). Must outlive the recorder.
  Env* env = nullptr;
};

struct OpenInfo {
  bool created = false;
  uint64_t records_found = 0;
  uint64_t truncated_bytes = 0;  // torn tail removed on open
};

class Recorder {
 public:
  // Opens or creates the log. An existing log must have been written with the same
  // key; a torn tail is truncated and recorded as witness_recovery; other damage
  // refuses to open (it is evidence: run `rtcmesh witness verify`).
  static Result<std::unique_ptr<Recorder>> open(const std::string& path,
                                                std::shared_ptr<const identity::Identity> id,
                                                RecorderOptions options = {});
  ~Recorder();  // close()
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // Returns the event's ticket (0, 1, 2, ... in acceptance order), or nullopt when
  // rejected. Timestamps are taken here. data/metadata must be objects (or null).
  std::optional<uint64_t> record(std::string event_type, nlohmann::json data = nullptr,
                                 nlohmann::json metadata = nullptr);
  uint64_t durable_events() const;  // tickets below this are durable
  // True once the ticket is durable; false on timeout or at once when sealed.
  bool wait_durable(uint64_t ticket, std::chrono::milliseconds timeout);
  bool flush(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // The I/O failure now in force ("" while writing works): the one being
  // retried, or the one that sealed the log.
  std::string io_error() const;
  // Asks the writer for a checkpoint over everything written so far, soon (it
  // does not wait); latest_checkpoint() has it once the writer got to it.
  void request_checkpoint();
  // Writes a final checkpoint, syncs and stops the writer. Idempotent. A batch
  // still waiting for disk space gets one last try; if that fails too the log is
  // sealed and its events are counted as lost.
  void close();

  RecorderStats stats() const;
  const OpenInfo& open_info() const { return open_info_; }
  // The latest signed checkpoint (export format), to hand to peers; null before one.
  nlohmann::json latest_checkpoint() const;
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  Recorder() = default;
  std::unique_ptr<Impl> impl_;
  OpenInfo open_info_;
  std::string path_;
};

}  // namespace rtcmesh::witness
