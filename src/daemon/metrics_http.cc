// The metrics endpoint over libmicrohttpd.
#include "daemon/metrics_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <future>

#include "util/result.h"

namespace queue::daemon {

namespace {

constexpr unsigned kMaxConnections = 16;
constexpr unsigned kMaxConnectionsPerAddress = 4;
constexpr unsigned kIdleTimeoutSeconds = 10;
constexpr size_t kConnectionMemory = 16 << 10;

constexpr char kIndex[] =
    "<html><head><title>queued</title></head><body><a href=\"/metrics\">metrics</a></body></html>\n";

MHD_Result Answer(MHD_Connection* connection, unsigned status, const std::string& body, const char* type) {
  MHD_Response* response =
      MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_Result queued = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return queued;
}

MHD_Result OnRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                     const char* /*version*/, const char* /*upload_data*/, size_t* upload_data_size,
                     void** /*request_state*/) {
  const auto& render = *static_cast<const MetricsHttp::Render*>(cls);
  const std::string_view verb(method);
  if (verb != MHD_HTTP_METHOD_GET && verb != MHD_HTTP_METHOD_HEAD) {
    *upload_data_size = 0;  // a body is not read, and the connection is closed after the answer
    return Answer(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n", "text/plain; charset=utf-8");
  }
  const std::string_view path(url);
  if (path == "/") return Answer(connection, MHD_HTTP_OK, kIndex, "text/html; charset=utf-8");
  if (path != "/metrics") return Answer(connection, MHD_HTTP_NOT_FOUND, "not found\n", "text/plain; charset=utf-8");
  const char* accept = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
  const MetricsFormat format = FormatFor(accept != nullptr ? accept : "");
  std::optional<std::string> text = render(format);
  if (!text)
    return Answer(connection, MHD_HTTP_SERVICE_UNAVAILABLE, "queued is busy; try again\n", "text/plain; charset=utf-8");
  return Answer(connection, MHD_HTTP_OK, *text, ContentType(format));
}

}  // namespace

Result<MetricsAddress> ParseMetricsAddress(const std::string& text) {
  MetricsAddress address{"127.0.0.1", 0};
  std::string port = text;
  if (auto colon = text.rfind(':'); colon != std::string::npos) {
    address.host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (address.host.size() >= 2 && address.host.front() == '[' && address.host.back() == ']')
      address.host = address.host.substr(1, address.host.size() - 2);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return Fail("--metrics: \"" + text + "\" is not PORT or ADDR:PORT");
  address.port = static_cast<uint16_t>(value);
  in6_addr any6{};
  if (inet_pton(AF_INET, address.host.c_str(), &any6) != 1 && inet_pton(AF_INET6, address.host.c_str(), &any6) != 1)
    return Fail("--metrics: \"" + address.host + "\" is not an IPv4 or IPv6 address");
  return address;
}

Result<std::unique_ptr<MetricsHttp>> MetricsHttp::Listen(const std::string& text) {
  auto parsed = ParseMetricsAddress(text);
  if (!parsed.ok()) return Fail(parsed.message());
  sockaddr_storage where{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&where);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&where);
  if (inet_pton(AF_INET, parsed->host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(parsed->port);
    length = sizeof *v4;
  } else {
    inet_pton(AF_INET6, parsed->host.c_str(), &v6->sin6_addr);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(parsed->port);
    length = sizeof *v6;
  }
  int fd = socket(where.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail("--metrics: cannot make a socket: " + ErrnoText(errno));
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (bind(fd, reinterpret_cast<sockaddr*>(&where), length) != 0 || listen(fd, 16) != 0) {
    int error = errno;
    close(fd);
    return Fail("--metrics: cannot listen on " + text + ": " + ErrnoText(error));
  }
  getsockname(fd, reinterpret_cast<sockaddr*>(&where), &length);
  const uint16_t port = ntohs(where.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
  std::string shown = where.ss_family == AF_INET ? parsed->host : "[" + parsed->host + "]";
  return std::unique_ptr<MetricsHttp>(new MetricsHttp(fd, shown + ":" + std::to_string(port)));
}

Status MetricsHttp::Start(Render render) {
  render_ = std::move(render);
  daemon_ = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, nullptr, nullptr, &OnRequest, &render_,
                             MHD_OPTION_LISTEN_SOCKET, fd_,                                    //
                             MHD_OPTION_CONNECTION_LIMIT, kMaxConnections,                     //
                             MHD_OPTION_PER_IP_CONNECTION_LIMIT, kMaxConnectionsPerAddress,    //
                             MHD_OPTION_CONNECTION_TIMEOUT, kIdleTimeoutSeconds,               //
                             MHD_OPTION_CONNECTION_MEMORY_LIMIT, kConnectionMemory,            //
                             MHD_OPTION_END);
  if (daemon_ == nullptr) return Fail("--metrics: libmicrohttpd did not start on " + address_);
  return Status::Ok();
}

MetricsHttp::~MetricsHttp() {
  // libmicrohttpd closes the listening socket it was given when it stops.
  if (daemon_ != nullptr)
    MHD_stop_daemon(daemon_);
  else
    close(fd_);
}

std::optional<std::string> RenderOnLoop(asio::io_context& io, std::function<std::string()> render,
                                        std::chrono::milliseconds timeout) {
  if (io.stopped()) return std::nullopt;
  auto promise = std::make_shared<std::promise<std::string>>();
  std::future<std::string> text = promise->get_future();
  asio::post(io, [promise, render = std::move(render)] { promise->set_value(render()); });
  if (text.wait_for(timeout) != std::future_status::ready) return std::nullopt;
  return text.get();
}

}  // namespace queue::daemon
