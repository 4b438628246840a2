#include "witness/verifier.hpp"

#include <map>
#include <memory>
#include <set>
#include <thread>

#include "identity/identity.hpp"
#include "witness/fast_record.hpp"

namespace rtcmesh::witness {

const char* damage_name(Damage d) {
  switch (d) {
    case Damage::None:
      return "valid";
    case Damage::Modified:
      return "modified";
    case Damage::Deleted:
      return "deleted";
    case Damage::Inserted:
      return "inserted";
    case Damage::Reordered:
      return "reordered";
    case Damage::Truncated:
      return "truncated";
    case Damage::BadSignature:
      return "bad signature";
    case Damage::WrongKey:
      return "wrong key";
    case Damage::Torn:
      return "torn tail";
    case Damage::Corrupt:
      return "corrupt framing";
  }
  return "?";
}

int damage_exit_code(Damage d) {
  return static_cast<int>(d);
}

namespace {

struct Entry {
  size_t offset = 0;
  std::string_view bytes;
  Hash hash{};
  bool crc_ok = false;
  bool parsed = false;
  std::string parse_error;
  struct {
    int64_t seq = -1;
    Hash prev{};
    std::string_view event_type, agent, data_raw;
  } rec;
  std::unique_ptr<Record> full;  // when the fast scanner declined
};

const Hash kZero{};

class Verifier {
 public:
  Verifier(std::string_view file, const VerifyOptions& o) : file_(file), opt_(o) {}

  VerifyReport run() {
    read_frames();
    if (r_.damage != Damage::None) return r_;
    hash_and_parse();
    for (const auto& c : opt_.checkpoints) wanted_sizes_.insert(c.size);
    for (size_t i = 0; i < e_.size(); ++i) {
      if (!check(i)) return finish_counts(i);
      if (wanted_sizes_.count(i)) roots_[i] = tree_.root();
      tree_.append(e_[i].hash);
    }
    if (wanted_sizes_.count(e_.size())) roots_[e_.size()] = tree_.root();
    finish_counts(e_.size());
    if (!check_external()) return r_;
    if (tail_.status != Frame::Status::End) {
      fail(Damage::Torn, static_cast<int64_t>(e_.size()), tail_.offset, tail_.problem);
    } else if (e_.empty()) {
      fail(Damage::Torn, 0, tail_.offset, "the log holds no record (its first write was cut)");
    }
    return r_;
  }

 private:
  VerifyReport& finish_counts(size_t n) {
    r_.records = n;
    return r_;
  }

  void read_frames() {
    FrameReader reader(file_);
    if (!reader.magic_ok()) {
      fail(Damage::Corrupt, -1, 0, "not a witness log (missing RTCMWIT1 magic)");
      return;
    }
    for (;;) {
      Frame f = reader.next();
      if (f.status == Frame::Status::End || f.status == Frame::Status::Torn) {
        tail_ = f;
        return;
      }
      if (f.status == Frame::Status::Corrupt) {
        fail(Damage::Corrupt, static_cast<int64_t>(e_.size()), f.offset, f.problem);
        return;
      }
      Entry e;
      e.offset = f.offset;
      e.bytes = f.payload;
      e.crc_ok = f.crc_ok;
      e_.push_back(std::move(e));
    }
  }

  // Hashing and parsing are independent per record: split them over two threads
  // for big logs (the checks that follow stay sequential and report the first damage).
  void hash_and_parse() {
    auto work = [this](size_t from, size_t to) {
      for (size_t i = from; i < to; ++i) {
        Entry& e = e_[i];
        e.hash = leaf_hash(e.bytes);
        RecordView v;
        if (scan_record(e.bytes, v)) {
          e.parsed = true;
          e.rec.seq = v.seq;
          e.rec.prev = v.prev;
          e.rec.event_type = v.event_type;
          e.rec.agent = v.agent;
          e.rec.data_raw = v.data_raw;
          continue;
        }
        auto rec = parse_record(e.bytes);
        if (rec) {
          e.parsed = true;
          e.full = std::make_unique<Record>(std::move(*rec));
          e.rec.seq = e.full->seq;
          e.rec.prev = e.full->prev;
          e.rec.event_type = e.full->event_type;
          e.rec.agent = e.full->agent;
        } else {
          e.parse_error = rec.error().message;
        }
      }
    };
    const size_t n = e_.size();
    if (n < 20000 || std::thread::hardware_concurrency() < 2) {
      work(0, n);
      return;
    }
    std::thread helper(work, n / 2, n);
    work(0, n / 2);
    helper.join();
  }

  bool fail(Damage d, int64_t seq, size_t offset, std::string detail,
            const Hash* expected = nullptr, const Hash* actual = nullptr) {
    r_.damage = d;
    r_.seq = seq;
    r_.offset = offset;
    r_.detail = std::move(detail);
    if (expected) r_.expected_hash = crypto::to_hex(*expected);
    if (actual) r_.actual_hash = crypto::to_hex(*actual);
    return false;
  }

  // Record i was altered: the next record's prev says what it should hash to.
  bool modified(size_t i, std::string why) {
    const Hash* expected = nullptr;
    if (i + 1 < e_.size() && e_[i + 1].parsed && e_[i + 1].rec.seq == static_cast<int64_t>(i + 1)) {
      expected = &e_[i + 1].rec.prev;
    }
    return fail(Damage::Modified, static_cast<int64_t>(i), e_[i].offset, std::move(why), expected,
                &e_[i].hash);
  }

  bool check(size_t i) {
    Entry& e = e_[i];
    if (!e.crc_ok) return modified(i, "record bytes changed (CRC-32C mismatch)");
    if (!e.parsed) return modified(i, "not a valid record: " + e.parse_error);
    const int64_t s = e.rec.seq;
    const auto idx = static_cast<int64_t>(i);
    if (s != idx && !check_numbering(i)) return false;
    const Hash& prev_expected = i == 0 ? kZero : e_[i - 1].hash;
    if (e.rec.prev != prev_expected) return broken_link(i);
    if (i == 0 && !check_genesis()) return false;
    if (e.rec.agent != r_.agent) {
      return modified(i,
                      "agent " + std::string(e.rec.agent) + " is not the log's node " + r_.agent);
    }
    if (e.rec.event_type == kTypeCheckpoint) return check_checkpoint(i);
    ++r_.events;
    return true;
  }

  bool check_numbering(size_t i) {
    const int64_t s = e_[i].rec.seq;
    const auto idx = static_cast<int64_t>(i);
    const Hash& before = i == 0 ? kZero : e_[i - 1].hash;
    if (s > idx) {
      for (size_t j = i + 1; j < e_.size() && j < i + 256; ++j) {
        if (e_[j].parsed && e_[j].rec.seq == idx) {
          return fail(Damage::Reordered, idx, e_[i].offset,
                      "record seq " + std::to_string(s) + " stands where seq " +
                          std::to_string(idx) + " belongs (seq " + std::to_string(idx) +
                          " is at offset " + std::to_string(e_[j].offset) + ")",
                      &e_[i].rec.prev, &before);
        }
      }
      std::string missing = s == idx + 1 ? "record seq " + std::to_string(idx) + " is"
                                         : "records seq " + std::to_string(idx) + ".." +
                                               std::to_string(s - 1) + " are";
      return fail(Damage::Deleted, idx, e_[i].offset,
                  missing + " missing: seq " + std::to_string(s) + " follows seq " +
                      std::to_string(idx - 1),
                  &e_[i].rec.prev, &before);
    }
    // s < idx: a record too many, a copy of an earlier one or a forged one.
    if (e_[static_cast<size_t>(s)].bytes == e_[i].bytes) {  // 0 <= s < i: seq < 0 never parses
      return fail(Damage::Inserted, idx, e_[i].offset,
                  "duplicate of record seq " + std::to_string(s), &before, &e_[i].rec.prev);
    }
    // Two records claim seq s: the one that does not chain is the intruder.
    if (i >= 1 && e_[i - 1].parsed && e_[i - 1].rec.seq == s) {
      const Hash& b2 = i >= 2 ? e_[i - 2].hash : kZero;
      size_t intruder = e_[i].rec.prev == b2 ? i - 1 : i;
      return fail(Damage::Inserted, static_cast<int64_t>(intruder), e_[intruder].offset,
                  "a record that is not part of the chain claims seq " + std::to_string(s),
                  &e_[intruder].rec.prev, &e_[intruder].hash);
    }
    return fail(Damage::Reordered, idx, e_[i].offset,
                "record seq " + std::to_string(s) + " appears after seq " + std::to_string(idx - 1),
                &before, &e_[i].rec.prev);
  }

  bool broken_link(size_t i) {
    const Hash& before = i == 0 ? kZero : e_[i - 1].hash;
    if (i + 1 < e_.size() && e_[i + 1].parsed) {
      const Entry& next = e_[i + 1];
      if (next.rec.prev == before && i >= 1) {
        return fail(Damage::Inserted, static_cast<int64_t>(i), e_[i].offset,
                    "record at this offset is not part of the chain (the next record links "
                    "over it)",
                    &before, &e_[i].rec.prev);
      }
      if (next.rec.prev != e_[i].hash) {
        return modified(i, "prev_hash field changed");
      }
    }
    if (i == 0) return modified(0, "the first record's prev must be zero");
    return fail(Damage::Modified, static_cast<int64_t>(i - 1), e_[i - 1].offset,
                "record seq " + std::to_string(i - 1) +
                    " does not hash to the prev_hash stored in seq " + std::to_string(i),
                &e_[i].rec.prev, &e_[i - 1].hash);
  }

  nlohmann::json data_of(size_t i) const {
    const Entry& e = e_[i];
    if (e.full) return e.full->data;
    auto j = nlohmann::json::parse(e.rec.data_raw.begin(), e.rec.data_raw.end(), nullptr, false);
    return j.is_discarded() ? nlohmann::json() : j;
  }

  bool check_genesis() {
    const auto& g = e_[0].rec;
    const nlohmann::json gdata = data_of(0);
    const std::string* key = nullptr;
    if (gdata.is_object()) {
      auto it = gdata.find("key");
      if (it != gdata.end() && it->is_string()) key = &it->get_ref<const std::string&>();
    }
    if (g.event_type != kTypeCreated || !key ||
        !crypto::from_hex_into(*key, r_.key.data(), r_.key.size())) {
      return modified(0, "the first record must be witness_log_created with the log's key");
    }
    r_.agent = identity::node_id_for(r_.key);
    if (g.agent != r_.agent) {
      return modified(0, "agent " + std::string(g.agent) + " is not the node id of the log key (" +
                             r_.agent + ")");
    }
    if (opt_.key && *opt_.key != r_.key) {
      return fail(Damage::WrongKey, 0, e_[0].offset,
                  "the log is signed by " + r_.agent + " (key " + crypto::to_hex(r_.key) +
                      "), not by the expected " + identity::node_id_for(*opt_.key) + " (key " +
                      crypto::to_hex(*opt_.key) + ")");
    }
    return true;
  }

  bool check_checkpoint(size_t i) {
    auto cp = Checkpoint::from_data(data_of(i), r_.agent, r_.key);
    if (!cp) return modified(i, cp.error().message);
    if (!cp->signature_ok()) {
      return fail(
          Damage::BadSignature, static_cast<int64_t>(i), e_[i].offset,
          "checkpoint signature does not verify with the log key " + crypto::to_hex(r_.key));
    }
    const Hash root = tree_.root();
    const Hash& head = i == 0 ? kZero : e_[i - 1].hash;
    if (cp->size != i || cp->head != head || cp->root != root) {
      // A valid signature over other contents: the records before it were rewritten.
      return fail(Damage::Modified, static_cast<int64_t>(i), e_[i].offset,
                  "the signed checkpoint (size " + std::to_string(cp->size) +
                      ") does not match the records before it: they were rewritten",
                  &cp->root, &root);
    }
    ++r_.checkpoints;
    r_.signed_records = i;
    r_.latest = std::move(*cp);
    return true;
  }

  bool check_external() {
    for (const auto& c : opt_.checkpoints) {
      if (!c.signature_ok()) {
        return fail(Damage::BadSignature, -1, 0,
                    "the given checkpoint's signature does not verify with its own key");
      }
      if (c.key != r_.key || c.origin != r_.agent) {
        return fail(Damage::WrongKey, 0, 0,
                    "the given checkpoint is signed by " + c.origin + " (key " +
                        crypto::to_hex(c.key) + ") but the log by " + r_.agent + " (key " +
                        crypto::to_hex(r_.key) + "): the log was re-signed or is another node's");
      }
      if (c.size > e_.size()) {
        size_t off = tail_.offset;
        Hash actual = e_.empty() ? kZero : e_.back().hash;
        return fail(Damage::Truncated, static_cast<int64_t>(e_.size()), off,
                    "the log ends after " + std::to_string(e_.size()) +
                        " records but a checkpoint signed for " + std::to_string(c.size) +
                        " exists: records seq " + std::to_string(e_.size()) + ".." +
                        std::to_string(c.size - 1) + " are missing",
                    &c.head, &actual);
      }
      const Hash& root = roots_[c.size];
      if (root != c.root) {
        size_t idx = c.size == 0 ? 0 : c.size - 1;
        return fail(Damage::Modified, static_cast<int64_t>(idx), e_[idx].offset,
                    "the log's first " + std::to_string(c.size) +
                        " records differ from the ones the given checkpoint signed (history "
                        "rewritten)",
                    &c.root, &root);
      }
    }
    return true;
  }

  std::string_view file_;
  const VerifyOptions& opt_;
  VerifyReport r_;
  std::vector<Entry> e_;
  Frame tail_;
  CompactTree tree_;
  std::set<uint64_t> wanted_sizes_;
  std::map<uint64_t, Hash> roots_;
};

}  // namespace

VerifyReport verify_log(std::string_view file, const VerifyOptions& options) {
  return Verifier(file, options).run();
}

std::string VerifyReport::text() const {
  std::string s;
  if (valid()) {
    s = "valid (" + std::to_string(events) + " events)\n";
    s += "  node " + agent + ", key " + crypto::to_hex(key) + "\n";
    s += "  " + std::to_string(records) + " records, " + std::to_string(checkpoints) +
         " signed checkpoints";
    if (latest) s += ", latest covers " + std::to_string(latest->size) + " records";
    s += "\n";
    uint64_t unsigned_tail = records - (latest ? latest->size + 1 : 0);
    if (records > 0 && unsigned_tail > 0) {
      s += "  note: the last " + std::to_string(unsigned_tail) +
           " records are not covered by a signed checkpoint (the writer did not close "
           "cleanly); they are chained but unsigned\n";
    }
    return s;
  }
  s = std::string("BROKEN: ") + damage_name(damage);
  if (seq >= 0) s += " at seq " + std::to_string(seq);
  s += " (offset " + std::to_string(offset) + ")\n";
  s += "  " + detail + "\n";
  if (!expected_hash.empty()) s += "  expected hash: " + expected_hash + "\n";
  if (!actual_hash.empty()) s += "  actual hash:   " + actual_hash + "\n";
  s += "  " + std::to_string(records) + " records verified before it\n";
  return s;
}

nlohmann::json VerifyReport::json() const {
  nlohmann::json j = {{"valid", valid()},           {"damage", damage_name(damage)},
                      {"events", events},           {"records", records},
                      {"checkpoints", checkpoints}, {"agent", agent},
                      {"key", crypto::to_hex(key)}};
  if (!valid()) {
    j["seq"] = seq;
    j["offset"] = offset;
    j["detail"] = detail;
    j["expected_hash"] = expected_hash;
    j["actual_hash"] = actual_hash;
  }
  return j;
}

}  // namespace rtcmesh::witness
