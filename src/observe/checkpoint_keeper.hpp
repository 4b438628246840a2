// CheckpointKeeper: checks and stores the witness checkpoints that peers send
// (docs/witness-format.md, "Peer checkpoints") on a worker thread of its own,
// never on the network thread: each costs an Ed25519 verify and a file write.
// Bounded: a peer flooding us gets its extra copies dropped (a later copy is as
// good as a dropped one).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

namespace rtcmesh::observe {

class Node;

class CheckpointKeeper {
 public:
  // The outcome of each checkpoint as an event object ({"event":
  // "witness-checkpoint", "peer", "ok", and "note"/"size"/"origin" or "error"}),
  // on the keeper's thread.
  using OnResult = std::function<void(const nlohmann::json& event)>;

  CheckpointKeeper(Node& node, OnResult on_result, size_t capacity = 256);
  ~CheckpointKeeper();  // handles what is queued, then stops
  CheckpointKeeper(const CheckpointKeeper&) = delete;
  CheckpointKeeper& operator=(const CheckpointKeeper&) = delete;

  // Any thread, never blocks; false when the queue is full.
  bool add(const std::string& peer, const nlohmann::json& checkpoint);

 private:
  void run();

  Node& node_;
  OnResult on_result_;
  const size_t capacity_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<std::string, nlohmann::json>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace rtcmesh::observe
