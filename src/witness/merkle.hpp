// RFC 9162 section 2.1 Merkle tree hashing: leaf = SHA-256(0x00 || d),
// node = SHA-256(0x01 || left || right), MTH({}) = SHA-256(""), split at the
// largest power of two below n. CompactTree keeps only the O(log n) roots of the
// perfect subtrees, enough to append and to compute the root of any prefix
// while streaming through a log.
#pragma once

#include <string_view>
#include <vector>

#include "identity/crypto.hpp"

namespace rtcmesh::witness {

using crypto::Hash;

Hash leaf_hash(std::string_view data);
Hash node_hash(const Hash& left, const Hash& right);
Hash empty_root();
// The recursive definition, for tests.
Hash reference_root(const std::vector<Hash>& leaf_hashes);

class CompactTree {
 public:
  void append(const Hash& leaf);
  Hash root() const;
  uint64_t size() const { return size_; }

 private:
  std::vector<Hash> stack_;  // perfect-subtree roots, largest first
  uint64_t size_ = 0;
};

}  // namespace rtcmesh::witness
