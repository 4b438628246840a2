// `rtcmesh witness verify|show|query|checkpoint`: read and check witness logs
// (docs/witness-format.md). `record` and `bench` are hidden helpers for the
// tests and bench/witness/run.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "commands.hpp"
#include "identity/identity.hpp"
#include "witness/query.hpp"
#include "witness/recorder.hpp"
#include "witness/verifier.hpp"

namespace rtcmesh::app {
namespace {

using namespace rtcmesh::witness;

// A read-only view of a whole file (mmap; empty files give an empty view).
class MappedFile {
 public:
  bool open(const std::string& path, std::string& error) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error = path + ": " + std::strerror(errno);
      return false;
    }
    struct stat st {};
    ::fstat(fd, &st);
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      data_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (data_ == MAP_FAILED) {
        data_ = nullptr;
        error = path + ": mmap: " + std::strerror(errno);
        ::close(fd);
        return false;
      }
    }
    ::close(fd);
    return true;
  }
  ~MappedFile() {
    if (data_) ::munmap(data_, size_);
  }
  std::string_view view() const {
    return data_ ? std::string_view(static_cast<const char*>(data_), size_) : std::string_view();
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

std::string read_text(const std::string& path, bool& ok) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  ok = static_cast<bool>(in) || in.eof();
  return ss.str();
}

constexpr const char* kVerifyHelp =
    R"(Verify a witness log: every frame checksum, seq number, prev link, agent,
checkpoint signature and Merkle root, and the given checkpoints.
Prints `valid (N events)` or the first broken record with expected and actual hash.
Exit codes:
   0  valid
   1  cannot read a file (log, key or checkpoint)
   2  bad arguments
  10  modified      a record's bytes were changed
  11  deleted       records are missing from the middle
  12  inserted      a record that is not part of the chain (including a duplicate)
  13  reordered     records are out of order (e.g. two swapped)
  14  truncated     the log ends before a given --checkpoint's size (tail cut off)
  15  bad signature a checkpoint's signature does not verify
  16  wrong key     the log is signed by another key than --key / the checkpoint's
  17  torn tail     the file ends inside a record (a crash mid-write; reopening
                    the log with a recorder repairs it and records the repair)
  18  corrupt       not a witness log, or impossible framing)";

struct QueryArgs {
  std::string file, type, peer, since;
  bool json = false;
};

int run_query(const QueryArgs& a) {
  QueryFilter filter{a.type, a.peer, 0};
  if (!a.since.empty()) {
    auto since = parse_since(a.since);
    if (!since) {
      std::fprintf(stderr, "rtcmesh witness: %s\n", since.error().message.c_str());
      return 2;
    }
    filter.since_us = *since;
  }
  MappedFile f;
  std::string err;
  if (!f.open(a.file, err)) {
    std::fprintf(stderr, "rtcmesh witness: %s\n", err.c_str());
    return 1;
  }
  auto result = query_log(f.view(), filter, [&](const Record& r, std::string_view payload) {
    if (a.json) {
      // The stored bytes as they are (canonical JSON, one record per line).
      std::fwrite(payload.data(), 1, payload.size(), stdout);
      std::fputc('\n', stdout);
    } else {
      std::printf("%6lld %s %-28s %s%s%s\n", static_cast<long long>(r.seq),
                  iso_time(r.ts_us).c_str(), r.event_type.c_str(), r.data.dump().c_str(),
                  r.metadata.empty() ? "" : " ",
                  r.metadata.empty() ? "" : r.metadata.dump().c_str());
    }
  });
  if (!result.is_log) {
    std::fprintf(stderr, "rtcmesh witness: %s is not a witness log\n", a.file.c_str());
    return 18;
  }
  for (size_t offset : result.unreadable) {
    std::fprintf(stderr, "rtcmesh witness: unreadable record at offset %zu\n", offset);
  }
  if (!result.stopped.empty()) {
    std::fprintf(stderr, "rtcmesh witness: stopped at offset %zu: %s\n", result.stopped_at,
                 result.stopped.c_str());
  }
  return 0;
}

}  // namespace

Runner add_witness_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("witness", "Verify, show and query signed witness logs");
  cmd->require_subcommand(1);

  // verify
  struct VerifyArgs {
    std::string file, key_file, key_hex;
    std::vector<std::string> checkpoints;
    bool json = false;
  };
  auto va = std::make_shared<VerifyArgs>();
  auto* verify = cmd->add_subcommand(
      "verify", "Check a witness log; `valid (N events)` or the first broken record");
  verify->footer(kVerifyHelp);
  verify->add_option("file", va->file, "Witness log")->required();
  verify->add_option("--key", va->key_file, "Expected signer: public key file (PEM or hex)");
  verify->add_option("--key-hex", va->key_hex, "Expected signer: public key, 64 hex digits");
  verify->add_option("--checkpoint", va->checkpoints,
                     "A checkpoint held elsewhere (from `rtcmesh witness checkpoint`); repeatable");
  verify->add_flag("--json", va->json, "Print the report as JSON");

  auto qa = std::make_shared<QueryArgs>();
  auto* show = cmd->add_subcommand("show", "Print every record");
  show->add_option("file", qa->file, "Witness log")->required();
  show->add_flag("--json", qa->json, "JSON lines: the stored canonical records");
  auto* query = cmd->add_subcommand("query", "Print the records that match");
  query->add_option("file", qa->file, "Witness log")->required();
  query->add_option("--type", qa->type, "event_type");
  query->add_option("--peer", qa->peer, "peer id in data/metadata (peer_id, peer, from, to)");
  query->add_option("--since", qa->since, "unix seconds or YYYY-MM-DDTHH:MM:SSZ");
  query->add_flag("--json", qa->json, "JSON lines: the stored canonical records");

  auto cpfile = std::make_shared<std::string>();
  auto* checkpoint = cmd->add_subcommand(
      "checkpoint", "Print the latest signed checkpoint (JSON) after verifying the log");
  checkpoint->add_option("file", *cpfile, "Witness log")->required();

  // Hidden helpers.
  struct RecordArgs {
    std::string file, data_dir = identity::default_data_dir();
    uint64_t count = 10;
    size_t checkpoint_every = 100;
    int interval_ms = 0;
    int pad = 0;
  };
  auto ra = std::make_shared<RecordArgs>();
  auto* record = cmd->add_subcommand("record", "");
  record->group("");
  record->add_option("file", ra->file)->required();
  record->add_option("--data-dir", ra->data_dir);
  record->add_option("--count", ra->count);
  record->add_option("--checkpoint-every", ra->checkpoint_every);
  record->add_option("--interval-ms", ra->interval_ms);
  record->add_option("--pad", ra->pad);

  struct BenchArgs {
    std::string dir = "/tmp";
    uint64_t events = 200000;
    bool json = false;
  };
  auto ba = std::make_shared<BenchArgs>();
  auto* bench = cmd->add_subcommand("bench", "");
  bench->group("");
  bench->add_option("--dir", ba->dir);
  bench->add_option("--events", ba->events);
  bench->add_flag("--json", ba->json);

  return [=]() -> int {
    if (verify->parsed()) {
      VerifyOptions opt;
      if (!va->key_file.empty() || !va->key_hex.empty()) {
        std::string text = va->key_hex;
        if (!va->key_file.empty()) {
          bool ok;
          text = read_text(va->key_file, ok);
          if (!ok) {
            std::fprintf(stderr, "rtcmesh witness: cannot read %s\n", va->key_file.c_str());
            return 1;
          }
        }
        auto key = crypto::Ed25519Verifier::from_text(text);
        if (!key) {
          std::fprintf(stderr, "rtcmesh witness: --key: %s\n", key.error().message.c_str());
          return 2;
        }
        opt.key = key->raw();
      }
      for (const auto& path : va->checkpoints) {
        bool ok;
        std::string text = read_text(path, ok);
        if (!ok) {
          std::fprintf(stderr, "rtcmesh witness: cannot read %s\n", path.c_str());
          return 1;
        }
        auto cp = Checkpoint::from_export(text);
        if (!cp) {
          std::fprintf(stderr, "rtcmesh witness: %s: %s\n", path.c_str(),
                       cp.error().message.c_str());
          return 2;
        }
        opt.checkpoints.push_back(std::move(*cp));
      }
      MappedFile f;
      std::string err;
      if (!f.open(va->file, err)) {
        std::fprintf(stderr, "rtcmesh witness: %s\n", err.c_str());
        return 1;
      }
      auto report = verify_log(f.view(), opt);
      if (va->json) {
        std::printf("%s\n", report.json().dump().c_str());
      } else {
        std::fputs(report.text().c_str(), stdout);
      }
      return damage_exit_code(report.damage);
    }
    if (show->parsed() || query->parsed()) return run_query(*qa);
    if (checkpoint->parsed()) {
      MappedFile f;
      std::string err;
      if (!f.open(*cpfile, err)) {
        std::fprintf(stderr, "rtcmesh witness: %s\n", err.c_str());
        return 1;
      }
      auto report = verify_log(f.view());
      if (!report.valid() && report.damage != Damage::Torn) {
        std::fprintf(stderr, "rtcmesh witness: the log is damaged: %s", report.text().c_str());
        return damage_exit_code(report.damage);
      }
      if (!report.latest) {
        std::fprintf(stderr, "rtcmesh witness: the log holds no checkpoint yet\n");
        return 1;
      }
      std::printf("%s\n", report.latest->export_json().dump().c_str());
      return 0;
    }
    if (record->parsed()) {
      auto id = identity::Identity::load_or_create(ra->data_dir);
      if (!id) {
        std::fprintf(stderr, "rtcmesh witness: %s\n", id.error().message.c_str());
        return 1;
      }
      RecorderOptions opt;
      opt.checkpoint_every = ra->checkpoint_every;
      // Acknowledgements are printed from the writer thread, once each batch is synced.
      opt.on_durable = [](uint64_t n) {
        std::printf("ack %llu\n", static_cast<unsigned long long>(n));
        std::fflush(stdout);
      };
      auto rec = Recorder::open(ra->file, *id, opt);
      if (!rec) {
        std::fprintf(stderr, "rtcmesh witness: %s\n", rec.error().message.c_str());
        return 1;
      }
      std::printf("opened records=%llu truncated=%llu\n",
                  static_cast<unsigned long long>((*rec)->open_info().records_found),
                  static_cast<unsigned long long>((*rec)->open_info().truncated_bytes));
      std::fflush(stdout);
      const std::string pad(static_cast<size_t>(std::max(ra->pad, 0)), 'x');
      for (uint64_t i = 0; i < ra->count; ++i) {
        nlohmann::json data = {{"n", i}, {"peer_id", "peer-" + std::to_string(i % 3)}};
        if (!pad.empty()) data["pad"] = pad;
        while (!(*rec)->record("test_event", data)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (ra->interval_ms > 0)
          std::this_thread::sleep_for(std::chrono::milliseconds(ra->interval_ms));
      }
      (*rec)->close();
      std::printf("closed\n");
      return 0;
    }
    if (bench->parsed()) return run_witness_bench(ba->dir, ba->events, ba->json);
    return 2;
  };
}

}  // namespace rtcmesh::app
