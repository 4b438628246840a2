// The recorder against a failing disk, in-process: FaultEnv injects ENOSPC,
// EIO and fdatasync failures under a real file (docs/witness-format.md, "When
// the disk fails").
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <vector>

#include "witness/fault_env.hpp"
#include "witness/format.hpp"
#include "witness/recorder.hpp"
#include "witness/verifier.hpp"

namespace rtcmesh::witness {
namespace {

using Op = FaultEnv::Op;
using Kind = IoProblem::Kind;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/rtcmesh-witio-XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The event types of a log's records, in order.
std::vector<std::string> types_in(const std::string& bytes) {
  std::vector<std::string> out;
  FrameReader reader(bytes);
  for (Frame f = reader.next(); f.status == Frame::Status::Ok; f = reader.next()) {
    auto r = parse_record(f.payload);
    out.push_back(r ? r->event_type : "?");
  }
  return out;
}

size_t count(const std::vector<std::string>& types, std::string_view type) {
  return static_cast<size_t>(std::count(types.begin(), types.end(), type));
}

// Collects what on_io_error reports (on the writer thread).
class Problems {
 public:
  void add(const IoProblem& p) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(p);
    }
    cv_.notify_all();
  }
  // The first problem of `kind`, waiting for it (the test fails on timeout).
  std::optional<IoProblem> wait(Kind kind) {
    std::unique_lock<std::mutex> lock(mu_);
    std::optional<IoProblem> found;
    cv_.wait_for(lock, std::chrono::seconds(10), [&] {
      for (const auto& p : seen_) {
        if (p.kind == kind) {
          found = p;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  bool has(Kind kind) {
    std::lock_guard<std::mutex> lock(mu_);
    return std::any_of(seen_.begin(), seen_.end(),
                       [&](const IoProblem& p) { return p.kind == kind; });
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<IoProblem> seen_;
};

struct Fixture {
  TempDir dir;
  std::string path = dir.file("witness.log");
  FaultEnv env;
  Problems problems;
  std::shared_ptr<const identity::Identity> id = *identity::Identity::generate();

  RecorderOptions options() {
    RecorderOptions o;
    o.env = &env;
    o.commit_delay = std::chrono::microseconds(0);
    o.retry_interval = std::chrono::milliseconds(5);
    o.on_io_error = [this](const IoProblem& p) { problems.add(p); };
    return o;
  }
  std::unique_ptr<Recorder> open(RecorderOptions o) {
    auto rec = Recorder::open(path, id, std::move(o));
    EXPECT_TRUE(rec.ok()) << rec.error().message;
    return rec ? std::move(rec.value()) : nullptr;
  }
};

TEST(RecorderIo, DiskFullKeepsTheBatchRetriesAndRecordsTheOutage) {
  Fixture fx;
  auto o = fx.options();
  o.queue_capacity = 8;
  auto rec = fx.open(o);
  ASSERT_TRUE(rec);
  const auto before = rec->latest_checkpoint();
  ASSERT_FALSE(before.is_null());

  // Every write finds the disk full, after writing 10 bytes of the batch.
  fx.env.set_short_write(10);
  fx.env.fail(Op::Append, ENOSPC, FaultEnv::kForever);
  auto first = rec->record("e", {{"n", 0}});
  ASSERT_TRUE(first);
  auto retrying = fx.problems.wait(Kind::Retrying);
  ASSERT_TRUE(retrying);
  EXPECT_EQ(retrying->code, ENOSPC);
  EXPECT_NE(retrying->message.find("No space left on device"), std::string::npos)
      << retrying->message;
  EXPECT_EQ(retrying->not_durable, 1u);
  EXPECT_TRUE(rec->stats().retrying);
  EXPECT_NE(rec->io_error().find(fx.path), std::string::npos) << rec->io_error();

  // Still accepting, up to the queue's capacity; then rejecting and counting.
  int accepted = 1, rejected = 0;
  for (int i = 1; i < 20; ++i) (rec->record("e", {{"n", i}}) ? accepted : rejected)++;
  EXPECT_EQ(accepted, 9);
  EXPECT_EQ(rejected, 11);
  EXPECT_FALSE(rec->wait_durable(*first, std::chrono::milliseconds(30)));
  EXPECT_EQ(rec->durable_events(), 0u);
  rec->request_checkpoint();  // not handed out before it is on disk
  EXPECT_EQ(rec->latest_checkpoint(), before);
  // The short writes were cut off: the file holds only what was durable.
  EXPECT_TRUE(verify_log(read_all(fx.path)).valid());

  // Space comes back: everything accepted becomes durable, in order.
  fx.env.heal();
  auto recovered = fx.problems.wait(Kind::Recovered);
  ASSERT_TRUE(recovered);
  EXPECT_TRUE(rec->flush(std::chrono::seconds(10)));
  EXPECT_EQ(rec->durable_events(), 9u);
  auto stats = rec->stats();
  EXPECT_FALSE(stats.retrying);
  EXPECT_FALSE(stats.sealed);
  EXPECT_EQ(stats.lost, 0u);
  EXPECT_GE(stats.io_errors, 1u);
  EXPECT_EQ(stats.io_errors, static_cast<uint64_t>(fx.env.failures(Op::Append)));
  EXPECT_EQ(rec->io_error(), "");
  rec->close();
  EXPECT_NE(rec->latest_checkpoint(), before);

  const auto bytes = read_all(fx.path);
  auto report = verify_log(bytes);
  EXPECT_TRUE(report.valid()) << report.text();
  auto types = types_in(bytes);
  EXPECT_EQ(count(types, "e"), 9u);
  EXPECT_EQ(count(types, "witness_io_error"), 1u);
  EXPECT_EQ(count(types, "witness_events_dropped"), 1u);
}

TEST(RecorderIo, WriteEioSealsTheLogAndCountsWhatIsLost) {
  Fixture fx;
  auto rec = fx.open(fx.options());
  ASSERT_TRUE(rec);
  auto kept = rec->record("kept", {{"n", 0}});
  ASSERT_TRUE(kept);
  ASSERT_TRUE(rec->wait_durable(*kept, std::chrono::seconds(10)));

  fx.env.fail(Op::Append, EIO);  // once: a sealed log does not try again
  auto doomed = rec->record("doomed", {{"n", 1}});
  ASSERT_TRUE(doomed);
  auto sealed = fx.problems.wait(Kind::Sealed);
  ASSERT_TRUE(sealed);
  EXPECT_EQ(sealed->code, EIO);
  EXPECT_EQ(sealed->not_durable, 1u);
  EXPECT_NE(sealed->message.find("Input/output error"), std::string::npos) << sealed->message;
  EXPECT_NE(sealed->message.find("sealed"), std::string::npos) << sealed->message;
  EXPECT_FALSE(rec->wait_durable(*doomed, std::chrono::seconds(10)));  // at once, not after 10 s
  auto stats = rec->stats();
  EXPECT_TRUE(stats.sealed);
  EXPECT_EQ(stats.lost, 1u);
  EXPECT_EQ(stats.durable, 1u);
  EXPECT_EQ(rec->io_error(), sealed->message);

  // Later events are rejected and counted, and the disk is not touched again.
  const int appends = fx.env.calls(Op::Append);
  EXPECT_FALSE(rec->record("after", {{"n", 2}}));
  EXPECT_EQ(rec->stats().rejected, 1u);
  EXPECT_FALSE(rec->flush(std::chrono::seconds(10)));
  rec->close();
  EXPECT_EQ(fx.env.calls(Op::Append), appends);
  EXPECT_EQ(fx.problems.size(), 1u);

  // What was durable stays a valid log, and a new recorder appends to it.
  auto types = types_in(read_all(fx.path));
  EXPECT_EQ(count(types, "kept"), 1u);
  EXPECT_EQ(count(types, "doomed"), 0u);
  rec.reset();
  auto again = Recorder::open(fx.path, fx.id);
  ASSERT_TRUE(again.ok()) << again.error().message;
  (*again)->close();
  EXPECT_TRUE(verify_log(read_all(fx.path)).valid());
}

// Any failed fdatasync seals, whatever its errno: the kernel may already have
// dropped the pages, so a retry could report success for data that is gone.
class RecorderSyncFailure : public testing::TestWithParam<int> {};

TEST_P(RecorderSyncFailure, Seals) {
  const int code = GetParam();
  Fixture fx;
  auto rec = fx.open(fx.options());
  ASSERT_TRUE(rec);
  fx.env.fail(Op::Sync, code, FaultEnv::kForever);
  auto t = rec->record("e", {{"n", 0}});
  ASSERT_TRUE(t);
  auto sealed = fx.problems.wait(Kind::Sealed);
  ASSERT_TRUE(sealed);
  EXPECT_EQ(sealed->code, code);
  EXPECT_NE(sealed->message.find("fdatasync " + fx.path), std::string::npos) << sealed->message;
  EXPECT_EQ(fx.env.failures(Op::Sync), 1);
  EXPECT_FALSE(rec->wait_durable(*t, std::chrono::seconds(10)));
  EXPECT_EQ(rec->stats().lost, 1u);
  rec->close();
  EXPECT_EQ(fx.env.failures(Op::Sync), 1);  // never retried
  EXPECT_FALSE(fx.problems.has(Kind::Retrying));
}

INSTANTIATE_TEST_SUITE_P(Errnos, RecorderSyncFailure, testing::Values(EIO, ENOSPC, EROFS));

TEST(RecorderIo, CloseWhileTheDiskIsFullSealsAndReturns) {
  Fixture fx;
  auto o = fx.options();
  o.retry_interval = std::chrono::hours(1);  // close() must not wait for it
  auto rec = fx.open(o);
  ASSERT_TRUE(rec);
  fx.env.fail(Op::Append, ENOSPC, FaultEnv::kForever);
  ASSERT_TRUE(rec->record("e", {{"n", 0}}));
  ASSERT_TRUE(fx.problems.wait(Kind::Retrying));
  ASSERT_TRUE(rec->record("e", {{"n", 1}}));
  const auto start = std::chrono::steady_clock::now();
  rec->close();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  auto sealed = fx.problems.wait(Kind::Sealed);
  ASSERT_TRUE(sealed);
  EXPECT_EQ(sealed->code, ENOSPC);
  EXPECT_NE(sealed->message.find("closing while the disk is still full"), std::string::npos)
      << sealed->message;
  EXPECT_EQ(sealed->not_durable, 2u);
  EXPECT_EQ(rec->stats().lost, 2u);
  EXPECT_TRUE(verify_log(read_all(fx.path)).valid());
}

TEST(RecorderIo, FailingTruncateOfAShortWriteSeals) {
  Fixture fx;
  auto rec = fx.open(fx.options());
  ASSERT_TRUE(rec);
  fx.env.set_short_write(7);
  fx.env.fail(Op::Append, ENOSPC);
  fx.env.fail(Op::Truncate, EIO);
  ASSERT_TRUE(rec->record("e", {{"n", 0}}));
  auto sealed = fx.problems.wait(Kind::Sealed);
  ASSERT_TRUE(sealed);
  EXPECT_NE(sealed->message.find("cutting the short write failed"), std::string::npos)
      << sealed->message;
  rec->close();
  // The 7 stray bytes are a torn tail: the next open repairs and records it.
  rec.reset();
  auto again = Recorder::open(fx.path, fx.id);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ((*again)->open_info().truncated_bytes, 7u);
  (*again)->close();
  EXPECT_TRUE(verify_log(read_all(fx.path)).valid());
}

TEST(RecorderIo, OpenReportsIoErrorsInsteadOfAborting) {
  struct Case {
    Op op;
    int code;
    const char* words;
  };
  for (const Case& c :
       {Case{Op::Open, EACCES, "Permission denied"}, Case{Op::Read, EIO, "read "},
        Case{Op::Truncate, EIO, "torn tail"}, Case{Op::Append, ENOSPC, "No space left"},
        Case{Op::Sync, EIO, "fdatasync"}, Case{Op::SyncDir, EIO, "durable"}}) {
    Fixture fx;
    fx.env.fail(c.op, c.code);
    auto rec = Recorder::open(fx.path, fx.id, fx.options());
    ASSERT_FALSE(rec.ok()) << c.words;
    EXPECT_NE(rec.error().message.find(c.words), std::string::npos) << rec.error().message;
    // The lock was released: a recorder on a healthy disk opens the same file.
    auto healthy = Recorder::open(fx.path, fx.id);
    EXPECT_TRUE(healthy.ok()) << c.words << ": " << healthy.error().message;
  }
}

}  // namespace
}  // namespace rtcmesh::witness
