#include "witness/recorder.hpp"

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "base/log.hpp"
#include "base/utf8.hpp"
#include "witness/canonical_json.hpp"

namespace rtcmesh::witness {

const char* to_string(IoProblem::Kind kind) {
  switch (kind) {
    case IoProblem::Kind::Retrying:
      return "retrying";
    case IoProblem::Kind::Recovered:
      return "recovered";
    case IoProblem::Kind::Sealed:
      return "sealed";
  }
  return "?";
}

namespace {

struct Pending {
  std::string type;
  nlohmann::json data, metadata;
  int64_t ts_us, mono_us;
};

[[noreturn]] void fatal(const std::string& what) {
  RTCMESH_LOG(Error, "witness", what << ": aborting");
  std::abort();
}

// Space may come back (a cleaner, a quota raised): worth a retry. Anything else
// means the device or the file system failed.
bool disk_full(int code) {
  return code == ENOSPC || code == EDQUOT;
}

}  // namespace

struct Recorder::Impl {
  std::string path;
  Env* env = nullptr;
  std::unique_ptr<LogFile> file;
  std::shared_ptr<const identity::Identity> id;
  RecorderOptions opt;

  // Writer-thread state.
  uint64_t next_seq = 0;
  Hash last_hash{};
  CompactTree tree;
  uint64_t since_checkpoint = 0;
  std::chrono::steady_clock::time_point last_checkpoint = std::chrono::steady_clock::now();
  uint64_t dropped_reported = 0;
  std::string buffer, scratch;    // buffer: records built, not yet durable
  uint64_t file_size = 0;         // bytes durable in the file (where a short write is cut back to)
  std::vector<Pending> inflight;  // the accepted events whose records are in `buffer`
  nlohmann::json pending_latest;  // a checkpoint in `buffer`, published once durable
  // A disk-full outage: its first error, when it began, failed attempts.
  IoStatus outage;
  std::chrono::steady_clock::time_point outage_since;
  uint64_t outage_attempts = 0;
  nlohmann::json outage_report;  // the witness_io_error record to write after it

  mutable std::mutex mu;
  std::condition_variable cv_work, cv_durable;
  std::deque<Pending> queue;
  bool stopping = false;
  bool checkpoint_requested = false;
  bool closed = false;
  bool retrying = false, sealed = false;
  std::string io_error;
  uint64_t accepted = 0, rejected = 0, durable = 0, records = 0, batches = 0, checkpoints = 0;
  uint64_t io_errors = 0, lost = 0;
  nlohmann::json latest;
  std::thread writer;

  void append_record(std::string_view type, const nlohmann::json& data,
                     const nlohmann::json& metadata, int64_t ts, int64_t mono) {
    scratch.clear();
    RecordInput in{next_seq, last_hash, id->node_id(), type, ts, mono, &data, &metadata};
    if (auto st = build_record(in, scratch); !st) {
      // Unencodable caller data must not break the chain: record the failure instead.
      nlohmann::json err = {{"event_type", base::is_valid_utf8(type) ? std::string(type) : "?"},
                            {"error", st.error().message}};
      scratch.clear();
      RecordInput e{next_seq, last_hash, id->node_id(), "witness_unencodable_event",
                    ts,       mono,      &err,          nullptr};
      if (auto st2 = build_record(e, scratch); !st2) fatal("witness: " + st2.error().message);
    }
    append_frame(scratch, buffer);
    last_hash = leaf_hash(scratch);
    tree.append(last_hash);
    ++next_seq;
    ++since_checkpoint;
  }

  void append_checkpoint() {
    Checkpoint c;
    c.origin = id->node_id();
    c.size = next_seq;
    c.root = tree.root();
    c.head = last_hash;
    c.key = id->public_key();
    c.sig = id->sign(c.note());
    append_record(kTypeCheckpoint, c.data_json(), nullptr, wall_clock_us(), monotonic_us());
    since_checkpoint = 0;
    last_checkpoint = std::chrono::steady_clock::now();
    pending_latest = c.export_json();  // handed to peers only once it is on disk
    std::lock_guard<std::mutex> lock(mu);
    ++checkpoints;
  }

  RecorderStats stats_locked() const {
    return {accepted,    rejected,  durable,  records, batches,
            checkpoints, io_errors, retrying, sealed,  lost};
  }

  enum class Outcome { Written, Retry, Seal };
  // Writes `buffer` and syncs it. On Retry the file is back at file_size and
  // `buffer` is kept; on Seal nothing more may be written.
  Outcome write_buffer(IoStatus& failure, std::chrono::microseconds& took) {
    const int64_t start = monotonic_us();
    size_t written = 0;
    if (auto st = file->append(buffer, written); !st) {
      failure = std::move(st);
      if (!disk_full(failure.code)) return Outcome::Seal;
      if (written > 0) {
        if (auto cut = file->truncate(file_size); !cut) {
          failure.message += "; cutting the short write failed: " + cut.message;
          return Outcome::Seal;
        }
      }
      return Outcome::Retry;
    }
    if (opt.sync) {
      if (auto st = file->sync(); !st) {
        failure = std::move(st);
        return Outcome::Seal;
      }
    }
    file_size += buffer.size();
    buffer.clear();
    took = std::chrono::microseconds(monotonic_us() - start);
    return Outcome::Written;
  }

  // After a successful write_buffer(): the in-flight events are durable.
  void committed(std::chrono::microseconds write_sync) {
    const uint64_t events = inflight.size();
    RecorderStats after;
    {
      std::lock_guard<std::mutex> lock(mu);
      durable += events;
      records = next_seq;
      ++batches;
      if (!pending_latest.is_null()) latest = std::move(pending_latest);
      pending_latest = nullptr;
      after = stats_locked();
    }
    cv_durable.notify_all();
    if (opt.on_durable && events) opt.on_durable(after.durable);
    if (opt.on_batch) opt.on_batch(events, write_sync, after);
    if (opt.on_recorded && events) {
      const int64_t now = monotonic_us();
      for (const auto& p : inflight)
        opt.on_recorded(p.type, std::chrono::microseconds(now - p.mono_us));
    }
    inflight.clear();
  }

  void report(IoProblem::Kind kind, const IoStatus& status, std::string message) {
    IoProblem problem{kind, status.code, std::move(message)};
    {
      std::lock_guard<std::mutex> lock(mu);
      problem.not_durable = accepted - durable;
      problem.io_errors = io_errors;
    }
    switch (kind) {
      case IoProblem::Kind::Retrying:
        RTCMESH_LOG(Warn, "witness", problem.message);
        break;
      case IoProblem::Kind::Recovered:
        RTCMESH_LOG(Info, "witness", problem.message);
        break;
      case IoProblem::Kind::Sealed:
        RTCMESH_LOG(Error, "witness", problem.message);
        break;
    }
    if (opt.on_io_error) opt.on_io_error(problem);
  }

  void start_retrying(const IoStatus& failure) {
    outage = failure;
    outage_since = std::chrono::steady_clock::now();
    outage_attempts = 1;
    uint64_t waiting;
    {
      std::lock_guard<std::mutex> lock(mu);
      ++io_errors;
      retrying = true;
      io_error = failure.message;
      waiting = accepted - durable;
    }
    report(IoProblem::Kind::Retrying, failure,
           failure.message + "; keeping " + std::to_string(waiting) +
               " accepted events in memory and retrying every " +
               std::to_string(opt.retry_interval.count()) + " ms");
  }

  void recovered() {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - outage_since);
    outage_report = {{"error", outage.message},
                     {"errno", outage.code},
                     {"failed_attempts", outage_attempts},
                     {"duration_ms", static_cast<int64_t>(ms.count())}};
    {
      std::lock_guard<std::mutex> lock(mu);
      retrying = false;
      io_error.clear();
    }
    report(IoProblem::Kind::Recovered, outage,
           path + ": writing again after " + std::to_string(ms.count()) + " ms (" +
               std::to_string(outage_attempts) + " failed attempts: " + outage.message + ")");
  }

  // Ends writing for good: what was accepted and is not durable is lost, and said so.
  void seal(const IoStatus& failure, const std::string& why) {
    std::string message;
    {
      std::lock_guard<std::mutex> lock(mu);
      ++io_errors;
      sealed = true;
      retrying = false;
      lost = accepted - durable;
      queue.clear();
      message = failure.message + (why.empty() ? "" : " (" + why + ")") +
                "; the witness log is sealed: " + std::to_string(lost) +
                " accepted events are not durable and nothing more is recorded";
      io_error = message;
    }
    cv_durable.notify_all();
    buffer.clear();
    inflight.clear();
    report(IoProblem::Kind::Sealed, failure, message);
  }

  void run() {
    for (;;) {
      if (!buffer.empty()) {
        // A batch that found the disk full: retry it, and take nothing new meanwhile
        // (the queue fills and then rejects, which is counted and recorded later).
        bool stop;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv_work.wait_for(lock, opt.retry_interval, [&] { return stopping; });
          stop = stopping;
        }
        IoStatus failure;
        std::chrono::microseconds took{0};
        switch (write_buffer(failure, took)) {
          case Outcome::Written:
            committed(took);
            recovered();
            continue;
          case Outcome::Seal:
            seal(failure, "while retrying after: " + outage.message);
            return;
          case Outcome::Retry:
            ++outage_attempts;
            {
              std::lock_guard<std::mutex> lock(mu);
              ++io_errors;
            }
            if (stop) {
              seal(failure, "closing while the disk is still full");
              return;
            }
            continue;
        }
      }
      bool stop;
      bool requested = false;
      uint64_t rejected_now;
      {
        std::unique_lock<std::mutex> lock(mu);
        auto due = last_checkpoint + opt.checkpoint_interval;
        cv_work.wait_until(lock, due, [&] {
          return stopping || checkpoint_requested || !queue.empty() || !outage_report.is_null();
        });
        // Group commit window: let a trickle of events gather into one write and
        // one fdatasync (PostgreSQL's commit_delay), so a busy connection costs
        // a few hundred syncs and wake-ups a second, not one per event.
        if (!queue.empty() && !stopping && opt.commit_delay.count() > 0 &&
            queue.size() < opt.max_batch) {
          cv_work.wait_for(lock, opt.commit_delay,
                           [&] { return stopping || queue.size() >= opt.max_batch; });
        }
        if (checkpoint_requested) {
          checkpoint_requested = false;
          requested = true;
        }
        size_t n = std::min(queue.size(), opt.max_batch);
        inflight.clear();
        for (size_t i = 0; i < n; ++i) {
          inflight.push_back(std::move(queue.front()));
          queue.pop_front();
        }
        stop = stopping && queue.empty();
        rejected_now = rejected;
      }
      if (!outage_report.is_null()) {
        append_record(kTypeIoError, outage_report, nullptr, wall_clock_us(), monotonic_us());
        outage_report = nullptr;
      }
      for (auto& p : inflight) {
        append_record(p.type, p.data, p.metadata, p.ts_us, p.mono_us);
        if (since_checkpoint >= opt.checkpoint_every) append_checkpoint();
      }
      if (rejected_now > dropped_reported) {
        nlohmann::json d = {{"count", rejected_now - dropped_reported}, {"total", rejected_now}};
        append_record(kTypeDropped, d, nullptr, wall_clock_us(), monotonic_us());
        dropped_reported = rejected_now;
      }
      if (since_checkpoint > 0 &&
          (stop || requested ||
           std::chrono::steady_clock::now() - last_checkpoint >= opt.checkpoint_interval)) {
        append_checkpoint();
      }
      if (buffer.empty()) {
        if (stop) return;
        continue;
      }
      IoStatus failure;
      std::chrono::microseconds took{0};
      switch (write_buffer(failure, took)) {
        case Outcome::Written:
          committed(took);
          if (stop) return;
          break;
        case Outcome::Seal:
          seal(failure, "");
          return;
        case Outcome::Retry:
          start_retrying(failure);  // the loop retries, once at once when stopping
          break;
      }
    }
  }
};

Result<std::unique_ptr<Recorder>> Recorder::open(const std::string& path,
                                                 std::shared_ptr<const identity::Identity> id,
                                                 RecorderOptions options) {
  Env* env = options.env ? options.env : &Env::posix();
  std::unique_ptr<LogFile> file;
  if (auto st = env->open_log(path, file); !st) {
    // One writer per log: a second recorder appending to the same file would fork the chain.
    if (st.code == EWOULDBLOCK) return make_error(path + " is in use by another recorder");
    return make_error("cannot open the witness log: " + st.message);
  }
  auto rec = std::unique_ptr<Recorder>(new Recorder());
  rec->path_ = path;
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->env = env;
  impl->id = id;
  impl->opt = std::move(options);
  if (impl->opt.checkpoint_every == 0) impl->opt.checkpoint_every = 1;
  auto fail = [&](std::string msg) -> Result<std::unique_ptr<Recorder>> {
    (void)file->close();
    return make_error(std::move(msg));
  };

  std::string content;
  if (auto st = file->read_all(content); !st) return fail(st.message);
  OpenInfo info;
  size_t good_end = 0;
  if (content.empty()) {
    info.created = true;
  } else {
    FrameReader reader(content);
    if (!reader.magic_ok()) return fail(path + " is not a witness log");
    good_end = reader.position();
    for (;;) {
      Frame f = reader.next();
      if (f.status == Frame::Status::End) break;
      bool at_tail =
          f.status == Frame::Status::Torn ||
          (f.status == Frame::Status::Ok && !f.crc_ok && reader.position() == content.size());
      if (at_tail) {
        info.truncated_bytes = content.size() - f.offset;
        break;
      }
      if (f.status != Frame::Status::Ok || !f.crc_ok) {
        return fail(path + ": damaged at offset " + std::to_string(f.offset) +
                    "; not appending (run `rtcmesh witness verify " + path + "`)");
      }
      auto r = parse_record(f.payload);
      if (!r || r->seq != static_cast<int64_t>(impl->next_seq) || r->prev != impl->last_hash) {
        return fail(path + ": broken chain at offset " + std::to_string(f.offset) +
                    "; not appending (run `rtcmesh witness verify " + path + "`)");
      }
      if (r->agent != id->node_id()) {
        return fail(path + " belongs to " + r->agent + "; refusing to append with the key of " +
                    id->node_id());
      }
      impl->last_hash = leaf_hash(f.payload);
      impl->tree.append(impl->last_hash);
      ++impl->next_seq;
      good_end = reader.position();
    }
    if (impl->next_seq == 0 && info.truncated_bytes == 0) info.created = true;
  }
  info.records_found = impl->next_seq;

  std::string header;
  if (content.empty() || good_end < kMagic.size()) {
    header = std::string(kMagic);
    good_end = 0;
  }
  if (auto st = file->truncate(good_end); !st) {
    return fail(path + ": cannot truncate the torn tail: " + st.message);
  }
  impl->file = std::move(file);
  impl->file_size = good_end;
  impl->buffer = header;
  const int64_t ts = wall_clock_us(), mono = monotonic_us();
  if (impl->next_seq == 0) {
    nlohmann::json d = {{"format", kFormat}, {"key", id->public_key_hex()}};
    impl->append_record(kTypeCreated, d, nullptr, ts, mono);
  } else {
    impl->append_record(kTypeOpened, {{"records", impl->next_seq}}, nullptr, ts, mono);
  }
  if (info.truncated_bytes > 0) {
    nlohmann::json d = {{"truncated_bytes", info.truncated_bytes},
                        {"last_good_seq", static_cast<int64_t>(info.records_found) - 1},
                        {"offset", good_end}};
    impl->append_record(kTypeRecovery, d, nullptr, ts, mono);
    RTCMESH_LOG(
        Warn, "witness",
        path << ": removed a torn tail of " << info.truncated_bytes << " bytes left by a crash");
  }
  impl->append_checkpoint();  // a signed head from the start, for peers and auditors
  {
    // Opening fails outright on any I/O error: nothing was accepted yet.
    IoStatus failure;
    std::chrono::microseconds took{0};
    if (impl->write_buffer(failure, took) != Impl::Outcome::Written) {
      (void)impl->file->close();
      return make_error("cannot write " + path + ": " + failure.message);
    }
    impl->committed(took);
  }
  if (info.created) {
    // Make the new file's directory entry durable too.
    std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
    if (dir.empty()) dir = "/";
    if (auto st = env->sync_dir(dir); !st) {
      (void)impl->file->close();
      return make_error("cannot make " + path + " durable: " + st.message);
    }
  }
  rec->open_info_ = info;
  Impl* raw = impl.get();
  impl->writer = std::thread([raw] { raw->run(); });
  rec->impl_ = std::move(impl);
  return rec;
}

Recorder::~Recorder() {
  close();
}

std::optional<uint64_t> Recorder::record(std::string event_type, nlohmann::json data,
                                         nlohmann::json metadata) {
  Pending p{std::move(event_type), std::move(data), std::move(metadata), wall_clock_us(),
            monotonic_us()};
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->closed || impl_->stopping || impl_->sealed ||
        impl_->queue.size() >= impl_->opt.queue_capacity) {
      ++impl_->rejected;
      return std::nullopt;
    }
    impl_->queue.push_back(std::move(p));
    ticket = impl_->accepted++;
    // Wake the writer only when it sleeps on an empty queue or a batch is full:
    // inside its commit window it collects the rest without being woken.
    const size_t n = impl_->queue.size();
    if (n != 1 && n != impl_->opt.max_batch) return ticket;
  }
  impl_->cv_work.notify_one();
  return ticket;
}

uint64_t Recorder::durable_events() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->durable;
}

bool Recorder::wait_durable(uint64_t ticket, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->cv_durable.wait_for(lock, timeout,
                             [&] { return impl_->durable > ticket || impl_->sealed; });
  return impl_->durable > ticket;
}

bool Recorder::flush(std::chrono::milliseconds timeout) {
  uint64_t target;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    target = impl_->accepted;
  }
  if (target == 0) return true;
  return wait_durable(target - 1, timeout);
}

void Recorder::request_checkpoint() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->closed || impl_->stopping || impl_->sealed) return;
    impl_->checkpoint_requested = true;
  }
  impl_->cv_work.notify_one();
}

void Recorder::close() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->closed) return;
    impl_->stopping = true;
  }
  impl_->cv_work.notify_one();
  if (impl_->writer.joinable()) impl_->writer.join();
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->closed = true;
  }
  if (auto st = impl_->file->close(); !st) RTCMESH_LOG(Warn, "witness", st.message);
}

std::string Recorder::io_error() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->io_error;
}

RecorderStats Recorder::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats_locked();
}

nlohmann::json Recorder::latest_checkpoint() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->latest;
}

}  // namespace rtcmesh::witness
