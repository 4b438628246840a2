#include "base/loop.hpp"

#include <glib-unix.h>
#include <glib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <unordered_map>

namespace rtcmesh::base {

// Posted tasks go through one mutex-protected queue and one eventfd watched by
// a GSource: cheaper than a GSource per task (g_main_context_invoke).
struct Loop::Impl {
  std::mutex mutex;
  std::deque<Task> queue;
  int event_fd = -1;
  GSource* source = nullptr;
  GMainLoop* main_loop = nullptr;
  std::thread::id thread_id;
  TimerId next_timer = 1;
  std::unordered_map<TimerId, GSource*> timers;  // loop thread only
};

namespace {

struct TimerData {
  Loop* loop;
  Loop::TimerId id;
  Loop::Task task;
};


}  // namespace

std::shared_ptr<Loop> Loop::shared() {
  static std::mutex mutex;
  static std::weak_ptr<Loop> instance;
  std::lock_guard<std::mutex> lock(mutex);
  auto loop = instance.lock();
  if (!loop) {
    loop = std::make_shared<Loop>();
    instance = loop;
  }
  return loop;
}

Loop::Loop() : impl_(std::make_unique<Impl>()) {
  context_ = g_main_context_new();
  impl_->main_loop = g_main_loop_new(context_, FALSE);
  impl_->event_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  impl_->source = g_unix_fd_source_new(impl_->event_fd, G_IO_IN);
  g_source_set_callback(
      impl_->source,
      G_SOURCE_FUNC(+[](gint fd, GIOCondition, gpointer data) -> gboolean {
        auto* loop = static_cast<Loop*>(data);
        uint64_t value;
        (void)!::read(fd, &value, sizeof value);
        std::deque<Task> tasks;
        {
          std::lock_guard<std::mutex> lock(loop->impl_->mutex);
          tasks.swap(loop->impl_->queue);
        }
        for (auto& task : tasks) task();
        return G_SOURCE_CONTINUE;
      }),
      this, nullptr);
  g_source_attach(impl_->source, context_);
  std::promise<void> started;
  auto started_future = started.get_future();
  thread_ = std::thread([this, &started] {
    impl_->thread_id = std::this_thread::get_id();
    g_main_context_push_thread_default(context_);
    started.set_value();
    run();
    g_main_context_pop_thread_default(context_);
  });
  started_future.wait();
}

void Loop::run() { g_main_loop_run(impl_->main_loop); }

Loop::~Loop() {
  // Drain: run whatever is still queued (teardown tasks), then stop.
  run_sync([this] {
    for (auto& [id, source] : impl_->timers) {
      g_source_destroy(source);
      g_source_unref(source);
    }
    impl_->timers.clear();
  });
  g_main_loop_quit(impl_->main_loop);
  g_main_context_wakeup(context_);
  if (thread_.joinable()) {
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // last reference dropped on the loop itself: let it finish
    } else {
      thread_.join();
    }
  }
  // Tasks posted after the quit are dropped: their owners are gone.
  g_source_destroy(impl_->source);
  g_source_unref(impl_->source);
  ::close(impl_->event_fd);
  g_main_loop_unref(impl_->main_loop);
  g_main_context_unref(context_);
}

void Loop::post(Task task) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    wake = impl_->queue.empty();
    impl_->queue.push_back(std::move(task));
  }
  if (wake) {
    uint64_t one = 1;
    (void)!::write(impl_->event_fd, &one, sizeof one);
  }
}

Loop::TimerId Loop::post_after(std::chrono::milliseconds delay, Task task) {
  TimerId id;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    id = impl_->next_timer++;
  }
  auto arm = [this, id, delay, task = std::move(task)]() mutable {
    GSource* source = g_timeout_source_new(static_cast<guint>(delay.count()));
    auto* data = new TimerData{this, id, std::move(task)};
    g_source_set_callback(
        source,
        +[](gpointer user_data) -> gboolean {
          auto* d = static_cast<TimerData*>(user_data);
          auto it = d->loop->impl_->timers.find(d->id);
          if (it != d->loop->impl_->timers.end()) {
            g_source_unref(it->second);
            d->loop->impl_->timers.erase(it);
          }
          Task fn = std::move(d->task);
          fn();
          return G_SOURCE_REMOVE;
        },
        data, +[](gpointer user_data) { delete static_cast<TimerData*>(user_data); });
    impl_->timers.emplace(id, source);
    g_source_attach(source, context_);
  };
  if (in_loop_thread()) {
    arm();
  } else {
    post(std::move(arm));
  }
  return id;
}

void Loop::cancel(TimerId id) {
  auto it = impl_->timers.find(id);
  if (it == impl_->timers.end()) return;
  g_source_destroy(it->second);
  g_source_unref(it->second);
  impl_->timers.erase(it);
}

void Loop::run_sync(const Task& task) {
  if (in_loop_thread()) {
    task();
    return;
  }
  std::promise<void> done;
  auto future = done.get_future();
  post([&] {
    task();
    done.set_value();
  });
  future.wait();
}

bool Loop::in_loop_thread() const { return std::this_thread::get_id() == impl_->thread_id; }

}  // namespace rtcmesh::base
