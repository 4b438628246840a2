#include "observe/checkpoint_keeper.hpp"

#include "observe/node.hpp"

namespace rtcmesh::observe {

CheckpointKeeper::CheckpointKeeper(Node& node, OnResult on_result, size_t capacity)
    : node_(node),
      on_result_(std::move(on_result)),
      capacity_(capacity),
      thread_([this] { run(); }) {}

CheckpointKeeper::~CheckpointKeeper() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool CheckpointKeeper::add(const std::string& peer, const nlohmann::json& checkpoint) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_ || queue_.size() >= capacity_) return false;
    queue_.emplace_back(peer, checkpoint);
  }
  cv_.notify_one();
  return true;
}

void CheckpointKeeper::run() {
  for (;;) {
    std::pair<std::string, nlohmann::json> item;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    auto kept = node_.keep_peer_checkpoint(item.first, item.second);
    nlohmann::json e = {{"event", "witness-checkpoint"}, {"peer", item.first}};
    if (kept) {
      e["ok"] = true;
      e["note"] = kept.value();
      e["size"] = item.second.value("size", nlohmann::json());
      e["origin"] = item.second.value("origin", nlohmann::json());
    } else {
      e["ok"] = false;
      e["error"] = kept.error().message;
    }
    if (on_result_) on_result_(e);
  }
}

}  // namespace rtcmesh::observe
