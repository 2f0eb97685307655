#include "util/worker_thread.h"

namespace queue::util {

WorkerThread::~WorkerThread() {
  *alive_ = false;
  if (!pool_) return;
  pool_->stop();
  pool_->join();
}

}  // namespace queue::util
