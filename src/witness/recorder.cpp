#include "witness/recorder.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

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

namespace {

struct Pending {
  std::string type;
  nlohmann::json data, metadata;
  int64_t ts_us, mono_us;
};

Result<std::string> read_file(int fd) {
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(std::string("read: ") + std::strerror(errno));
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

[[noreturn]] void fatal(const std::string& what) {
  RTCMESH_LOG(Error, "witness", what << ": aborting (acknowledged events must not be lost)");
  std::abort();
}

void write_all(int fd, const std::string& data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fatal("witness: write to " + path + " failed: " + std::strerror(errno));
    off += static_cast<size_t>(n);
  }
}

}  // namespace

struct Recorder::Impl {
  std::string path;
  int fd = -1;
  std::shared_ptr<const identity::Identity> id;
  RecorderOptions opt;

  // Writer-thread state.
  uint64_t next_seq = 0;
  Hash last_hash{};
  CompactTree tree;
  uint64_t since_checkpoint = 0;
  std::chrono::steady_clock::time_point last_checkpoint = std::chrono::steady_clock::now();
  uint64_t dropped_reported = 0;
  std::string buffer, scratch;

  mutable std::mutex mu;
  std::condition_variable cv_work, cv_durable;
  std::deque<Pending> queue;
  bool stopping = false;
  bool checkpoint_requested = false;
  bool closed = false;
  uint64_t accepted = 0, rejected = 0, durable = 0, records = 0, batches = 0, checkpoints = 0;
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
      RecordInput e{next_seq, last_hash, id->node_id(), "witness_unencodable_event", ts, mono,
                    &err, nullptr};
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
    std::lock_guard<std::mutex> lock(mu);
    latest = c.export_json();
    ++checkpoints;
  }

  RecorderStats stats_locked() const { return {accepted, rejected, durable, records, batches, checkpoints}; }

  void commit(uint64_t events_in_batch) {
    if (buffer.empty()) return;
    const int64_t write_start = monotonic_us();
    write_all(fd, buffer, path);
    if (opt.sync && ::fdatasync(fd) != 0) {
      fatal("witness: fdatasync " + path + " failed: " + std::strerror(errno));
    }
    const auto write_sync = std::chrono::microseconds(monotonic_us() - write_start);
    buffer.clear();
    RecorderStats after;
    {
      std::lock_guard<std::mutex> lock(mu);
      durable += events_in_batch;
      records = next_seq;
      ++batches;
      after = stats_locked();
    }
    cv_durable.notify_all();
    if (opt.on_durable && events_in_batch) opt.on_durable(after.durable);
    if (opt.on_batch) opt.on_batch(events_in_batch, write_sync, after);
  }

  void run() {
    std::vector<Pending> batch;
    for (;;) {
      bool stop;
      bool requested = false;
      uint64_t rejected_now;
      {
        std::unique_lock<std::mutex> lock(mu);
        auto due = last_checkpoint + opt.checkpoint_interval;
        cv_work.wait_until(lock, due, [&] { return stopping || checkpoint_requested || !queue.empty(); });
        // Group commit window: let a trickle of events gather into one write and
        // one fdatasync (PostgreSQL's commit_delay), so a busy connection costs
        // a few hundred syncs and wake-ups a second, not one per event.
        if (!queue.empty() && !stopping && opt.commit_delay.count() > 0 && queue.size() < opt.max_batch) {
          cv_work.wait_for(lock, opt.commit_delay, [&] { return stopping || queue.size() >= opt.max_batch; });
        }
        if (checkpoint_requested) {
          checkpoint_requested = false;
          requested = true;
        }
        size_t n = std::min(queue.size(), opt.max_batch);
        batch.clear();
        for (size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
        stop = stopping && queue.empty();
        rejected_now = rejected;
      }
      for (auto& p : batch) {
        append_record(p.type, p.data, p.metadata, p.ts_us, p.mono_us);
        if (since_checkpoint >= opt.checkpoint_every) append_checkpoint();
      }
      if (rejected_now > dropped_reported) {
        nlohmann::json d = {{"count", rejected_now - dropped_reported}, {"total", rejected_now}};
        append_record(kTypeDropped, d, nullptr, wall_clock_us(), monotonic_us());
        dropped_reported = rejected_now;
      }
      if (since_checkpoint > 0 &&
          (stop || requested || std::chrono::steady_clock::now() - last_checkpoint >= opt.checkpoint_interval)) {
        append_checkpoint();
      }
      commit(batch.size());
      if (opt.on_recorded && !batch.empty()) {
        const int64_t now = monotonic_us();
        for (const auto& p : batch) {
          opt.on_recorded(p.type, std::chrono::microseconds(now - p.mono_us));
        }
      }
      if (stop) return;
    }
  }
};

Result<std::unique_ptr<Recorder>> Recorder::open(const std::string& path,
                                                 std::shared_ptr<const identity::Identity> id,
                                                 RecorderOptions options) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return make_error("cannot open " + path + ": " + std::strerror(errno));
  // One writer per log: a second recorder appending to the same file would fork the chain.
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return make_error(path + " is in use by another recorder");
  }
  auto rec = std::unique_ptr<Recorder>(new Recorder());
  rec->path_ = path;
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->fd = fd;
  impl->id = id;
  impl->opt = std::move(options);
  if (impl->opt.checkpoint_every == 0) impl->opt.checkpoint_every = 1;
  auto fail = [&](std::string msg) -> Result<std::unique_ptr<Recorder>> {
    ::close(fd);
    return make_error(std::move(msg));
  };

  auto content = read_file(fd);
  if (!content) return fail(path + ": " + content.error().message);
  OpenInfo info;
  size_t good_end = 0;
  if (content->empty()) {
    info.created = true;
  } else {
    FrameReader reader(*content);
    if (!reader.magic_ok()) return fail(path + " is not a witness log");
    good_end = reader.position();
    for (;;) {
      Frame f = reader.next();
      if (f.status == Frame::Status::End) break;
      bool at_tail = f.status == Frame::Status::Torn ||
                     (f.status == Frame::Status::Ok && !f.crc_ok && reader.position() == content->size());
      if (at_tail) {
        info.truncated_bytes = content->size() - f.offset;
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
  if (content->empty() || good_end < kMagic.size()) {
    header = std::string(kMagic);
    good_end = 0;
  }
  if (::ftruncate(fd, static_cast<off_t>(good_end)) != 0 ||
      ::lseek(fd, 0, SEEK_END) < 0) {
    return fail(path + ": cannot truncate the torn tail: " + std::strerror(errno));
  }
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
    RTCMESH_LOG(Warn, "witness", path << ": removed a torn tail of " << info.truncated_bytes
                                      << " bytes left by a crash");
  }
  impl->append_checkpoint();  // a signed head from the start, for peers and auditors
  impl->commit(0);
  if (info.created) {
    // Make the new file's directory entry durable too.
    std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
    if (dir.empty()) dir = "/";
    if (int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  rec->open_info_ = info;
  Impl* raw = impl.get();
  impl->writer = std::thread([raw] { raw->run(); });
  rec->impl_ = std::move(impl);
  return rec;
}

Recorder::~Recorder() { close(); }

std::optional<uint64_t> Recorder::record(std::string event_type, nlohmann::json data,
                                         nlohmann::json metadata) {
  Pending p{std::move(event_type), std::move(data), std::move(metadata), wall_clock_us(),
            monotonic_us()};
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->closed || impl_->stopping || impl_->queue.size() >= impl_->opt.queue_capacity) {
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
  return impl_->cv_durable.wait_for(lock, timeout, [&] { return impl_->durable > ticket; });
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
    if (impl_->closed || impl_->stopping) return;
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
  ::close(impl_->fd);
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
