// Verifies a witness log from its stored bytes (never re-serialising): frames and
// CRCs, seq numbering, every prev link, the agent against the log's key, every
// checkpoint's signature, head and Merkle root, and external checkpoints (held by
// a peer or exported earlier) that reveal truncation, rollback or a swapped key.
// Reports the first damage found.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "identity/crypto.hpp"
#include "witness/format.hpp"

namespace rtcmesh::witness {

enum class Damage {
  None = 0,
  Modified = 10,
  Deleted = 11,
  Inserted = 12,
  Reordered = 13,
  Truncated = 14,
  BadSignature = 15,
  WrongKey = 16,
  Torn = 17,
  Corrupt = 18,
};
const char* damage_name(Damage d);
int damage_exit_code(Damage d);  // 0 for None

struct VerifyOptions {
  std::optional<crypto::PublicKeyBytes> key;  // expected signer
  std::vector<Checkpoint> checkpoints;        // held elsewhere
};

struct VerifyReport {
  Damage damage = Damage::None;
  uint64_t records = 0;         // records read (including checkpoints)
  uint64_t events = 0;          // records that are not checkpoints
  uint64_t checkpoints = 0;     // in-log checkpoints verified
  uint64_t signed_records = 0;  // records covered by the last valid in-log checkpoint
  std::string agent;            // node id of the log
  crypto::PublicKeyBytes key{};
  std::optional<Checkpoint> latest;  // last in-log checkpoint

  // The first broken record (when damage != None).
  int64_t seq = -1;
  size_t offset = 0;
  std::string expected_hash, actual_hash;
  std::string detail;

  bool valid() const { return damage == Damage::None; }
  std::string text() const;
  nlohmann::json json() const;
};

VerifyReport verify_log(std::string_view file, const VerifyOptions& options = {});

}  // namespace rtcmesh::witness
