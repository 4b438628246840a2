// The witness file format (docs/witness-format.md): an 8-byte magic, then frames
// [u32 LE length][u32 LE CRC-32C of the payload][payload], each payload one
// record in canonical JSON. Records are chained (prev = leaf hash of the previous
// record) and are the leaves of an RFC 9162 Merkle tree; checkpoint records carry
// an Ed25519 signature over a C2SP-style note (origin, size, root, head).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "identity/crypto.hpp"
#include "witness/merkle.hpp"

namespace rtcmesh::witness {

constexpr std::string_view kMagic = "RTCMWIT1";
constexpr std::string_view kFormat = "rtcmesh-witness/v1";
constexpr size_t kFrameHeader = 8;
constexpr uint32_t kMaxRecord = 1 << 20;

constexpr std::string_view kTypeCreated = "witness_log_created";
constexpr std::string_view kTypeOpened = "witness_log_opened";
constexpr std::string_view kTypeRecovery = "witness_recovery";
constexpr std::string_view kTypeDropped = "witness_events_dropped";
constexpr std::string_view kTypeCheckpoint = "witness_checkpoint";
constexpr std::string_view kTypeIoError = "witness_io_error";  // a disk-full outage, after it

void append_frame(std::string_view payload, std::string& out);

struct Frame {
  enum class Status { Ok, End, Torn, Corrupt };
  Status status = Status::End;
  size_t offset = 0;  // of the frame header
  std::string_view payload;
  bool crc_ok = false;
  std::string problem;  // for Torn / Corrupt
};

// Walks the frames of a whole file held in memory. Torn: the file ends inside a
// frame (or its last frame fails its CRC), as a crash mid-append leaves it.
// Corrupt: a length that cannot be right, with more bytes after it.
class FrameReader {
 public:
  explicit FrameReader(std::string_view file);
  bool magic_ok() const { return magic_ok_; }
  Frame next();
  size_t position() const { return pos_; }

 private:
  std::string_view file_;
  size_t pos_ = 0;
  bool magic_ok_ = false;
};

struct Record {
  int64_t seq = -1;
  Hash prev{};
  std::string event_type;
  std::string agent;
  int64_t ts_us = 0;
  int64_t mono_us = 0;
  nlohmann::json data;
  nlohmann::json metadata;
};

Result<Record> parse_record(std::string_view payload);

struct RecordInput {
  uint64_t seq = 0;
  Hash prev{};
  std::string_view agent;
  std::string_view event_type;
  int64_t ts_us = 0;
  int64_t mono_us = 0;
  const nlohmann::json* data = nullptr;      // object or null
  const nlohmann::json* metadata = nullptr;  // object or null
};
// Canonical record bytes (keys in order: agent, data, event_type, metadata,
// mono_us, prev, seq, ts_us, v).
Status build_record(const RecordInput& in, std::string& out);

struct Checkpoint {
  std::string origin;  // node id
  uint64_t size = 0;   // records covered: seq 0 .. size-1
  Hash root{};         // Merkle root over those records' leaf hashes
  Hash head{};         // leaf hash of record size-1 (zero when size == 0)
  crypto::PublicKeyBytes key{};
  crypto::Signature sig{};

  // The signed bytes: "rtcmesh-witness/v1\n<origin>\n<size>\n<root hex>\n<head hex>\n".
  std::string note() const;
  bool signature_ok() const;
  nlohmann::json data_json() const;    // the data of a witness_checkpoint record
  nlohmann::json export_json() const;  // the exported file (adds type and key)
  static Result<Checkpoint> from_data(const nlohmann::json& data, std::string_view origin,
                                      const crypto::PublicKeyBytes& key);
  static Result<Checkpoint> from_export(std::string_view text);
};

// A checkpoint received from a peer (export JSON): parsed, its signature checked
// and its origin checked against its key. Record it in your own log as a
// witness_peer_checkpoint event (data = the export JSON) so that the peer's claim
// is kept under your signature; `rtcmesh witness verify THEIR_LOG --checkpoint`
// then catches a later rewrite or truncation of theirs.
Result<Checkpoint> parse_peer_checkpoint(std::string_view text);
constexpr std::string_view kTypePeerCheckpoint = "witness_peer_checkpoint";

int64_t wall_clock_us();
int64_t monotonic_us();

// Privacy helper for ICE candidates: "sha256:" + first 16 hex digits of
// SHA-256(salt || address), so equal addresses stay linkable within a log
// without being readable. Keep the salt secret (not in the log) or it can be
// brute-forced over the IPv4 space.
std::string salted_address_hash(std::string_view salt, std::string_view address);
std::string random_salt();  // 32 hex digits

}  // namespace rtcmesh::witness
