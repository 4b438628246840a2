#include "base/loop.hpp"

#include "base/glib_loop.hpp"

#include <glib-unix.h>
#include <glib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <deque>
#include <future>
#include <mutex>
#include <unordered_map>

namespace rtcmesh::base {

// Everything the loop thread uses lives here, shared by the Loop object and
// its thread, so that a Loop whose last reference is dropped on its own thread
// (from inside a task) can let the thread finish and clean up after itself.
//
// Posted tasks go through one mutex-protected queue and one eventfd watched by
// a GSource: cheaper than a GSource per task (g_main_context_invoke).
struct Loop::Impl {
  std::mutex mutex;
  std::deque<Task> queue;
  TimerId next_timer = 1;
  int event_fd = -1;
  GMainContext* context = nullptr;
  GSource* source = nullptr;
  GMainLoop* main_loop = nullptr;
  std::thread::id thread_id;
  std::unordered_map<TimerId, GSource*> timers;  // loop thread only

  void run_posted() {
    uint64_t value;
    (void)!::read(event_fd, &value, sizeof value);
    std::deque<Task> tasks;
    {
      std::lock_guard<std::mutex> lock(mutex);
      tasks.swap(queue);
    }
    for (auto& task : tasks) task();
  }

  // Loop thread, after g_main_loop_run returned.
  void release() {
    for (auto& [id, timer] : timers) {
      g_source_destroy(timer);
      g_source_unref(timer);
    }
    timers.clear();
    std::deque<Task> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex);
      dropped.swap(queue);  // their owners are gone; destroyed outside the lock
    }
    dropped.clear();
    g_source_destroy(source);
    g_source_unref(source);
    ::close(event_fd);
    g_main_loop_unref(main_loop);
    g_main_context_unref(context);
  }
};

namespace {

thread_local bool t_loop_thread = false;

struct TimerData {
  Loop::Impl* impl;
  Loop::TimerId id;
  Loop::Task task;
};

}  // namespace

std::shared_ptr<Loop> Loop::shared() {
  // Lives for the whole process: connections come and go, the thread stays.
  static auto* instance = new std::shared_ptr<Loop>(std::make_shared<Loop>());
  return *instance;
}

Loop::Loop() : impl_(std::make_shared<Impl>()) {
  Impl& impl = *impl_;
  impl.context = g_main_context_new();
  impl.main_loop = g_main_loop_new(impl.context, FALSE);
  impl.event_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  impl.source = g_unix_fd_source_new(impl.event_fd, G_IO_IN);
  g_source_set_callback(impl.source,
                        G_SOURCE_FUNC(+[](gint, GIOCondition, gpointer data) -> gboolean {
                          static_cast<Impl*>(data)->run_posted();
                          return G_SOURCE_CONTINUE;
                        }),
                        &impl, nullptr);
  g_source_attach(impl.source, impl.context);
  std::promise<void> started;
  auto started_future = started.get_future();
  thread_ = std::thread([impl_ref = impl_, &started] {
    impl_ref->thread_id = std::this_thread::get_id();
    t_loop_thread = true;
    g_main_context_push_thread_default(impl_ref->context);
    started.set_value();
    g_main_loop_run(impl_ref->main_loop);
    g_main_context_pop_thread_default(impl_ref->context);
    impl_ref->release();
  });
  started_future.wait();
}

Loop::~Loop() {
  // g_main_loop_quit wakes the context itself; touching the context after it
  // would race with the thread releasing it.
  g_main_loop_quit(impl_->main_loop);
  if (thread_.get_id() == std::this_thread::get_id()) {
    // Dropped from a task on our own thread: the dispatch in progress returns,
    // g_main_loop_run sees the quit, and the thread releases everything.
    thread_.detach();
  } else {
    thread_.join();
  }
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
  auto arm = [impl = impl_.get(), id, delay, task = std::move(task)]() mutable {
    GSource* source = g_timeout_source_new(static_cast<guint>(delay.count()));
    auto* data = new TimerData{impl, id, std::move(task)};
    g_source_set_callback(
        source,
        +[](gpointer user_data) -> gboolean {
          auto* d = static_cast<TimerData*>(user_data);
          auto it = d->impl->timers.find(d->id);
          if (it != d->impl->timers.end()) {
            g_source_unref(it->second);
            d->impl->timers.erase(it);
          }
          Task fn = std::move(d->task);
          fn();
          return G_SOURCE_REMOVE;
        },
        data, +[](gpointer user_data) { delete static_cast<TimerData*>(user_data); });
    impl->timers.emplace(id, source);
    g_source_attach(source, impl->context);
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

GMainContext* GlibLoopAccess::context(const Loop& loop) {
  return loop.impl_->context;
}

bool Loop::on_any_loop_thread() {
  return t_loop_thread;
}

bool Loop::in_loop_thread() const {
  return std::this_thread::get_id() == impl_->thread_id;
}

}  // namespace rtcmesh::base
