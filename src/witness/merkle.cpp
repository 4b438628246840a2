#include "witness/merkle.hpp"

namespace rtcmesh::witness {

Hash leaf_hash(std::string_view data) {
  thread_local crypto::Sha256 h;
  const uint8_t prefix = 0x00;
  h.update(&prefix, 1);
  h.update(data);
  return h.finish();
}

Hash node_hash(const Hash& left, const Hash& right) {
  thread_local crypto::Sha256 h;
  const uint8_t prefix = 0x01;
  h.update(&prefix, 1);
  h.update(left.data(), left.size());
  h.update(right.data(), right.size());
  return h.finish();
}

Hash empty_root() {
  return crypto::sha256("");
}

static Hash reference(const Hash* leaves, size_t n) {
  if (n == 1) return leaves[0];
  size_t k = 1;
  while (k * 2 < n) k *= 2;
  return node_hash(reference(leaves, k), reference(leaves + k, n - k));
}

Hash reference_root(const std::vector<Hash>& leaf_hashes) {
  if (leaf_hashes.empty()) return empty_root();
  return reference(leaf_hashes.data(), leaf_hashes.size());
}

void CompactTree::append(const Hash& leaf) {
  stack_.push_back(leaf);
  // Each trailing 1 bit of the old size is a perfect subtree that the new leaf completes.
  for (uint64_t n = size_; n & 1; n >>= 1) {
    Hash right = stack_.back();
    stack_.pop_back();
    stack_.back() = node_hash(stack_.back(), right);
  }
  ++size_;
}

Hash CompactTree::root() const {
  if (stack_.empty()) return empty_root();
  Hash r = stack_.back();
  for (size_t i = stack_.size() - 1; i-- > 0;) r = node_hash(stack_[i], r);
  return r;
}

}  // namespace rtcmesh::witness
