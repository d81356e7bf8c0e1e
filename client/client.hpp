#pragma once

// The WeChat API client for applications: appends the right token, refreshes
// it through its token source when WeChat rejects it and retries exactly once.

#include <chrono>
#include <cstdint>
#include <string_view>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/json/value.hpp>

#include "client/error.hpp"
#include "client/token_source.hpp"

namespace wh::client {

/// Options of a client.
struct client_options {
  /// Base of relative API paths; tests and proxies override it.
  std::string api_base = "https://api.weixin.qq.com";
  /// Default deadline of one HTTP exchange.
  std::chrono::milliseconds timeout{10'000};
  /// Extra CA bundle (PEM) for https.
  std::string ca_file;
  /// Verify certificates and host names (only tests may disable).
  bool verify_peer = true;
  /// I/O threads of the client's HTTP connection pool.
  unsigned io_threads = 1;
};

/// One multipart/form-data field or file.
struct form_part {
  /// The field name.
  std::string name;
  /// The file name; empty for plain fields.
  std::string filename;
  /// The part's Content-Type; empty = none.
  std::string content_type;
  /// The raw bytes.
  std::string data;
};

/// Everything but method and path of one API call.
struct request_options {
  /// Extra query parameters (encoded by the client).
  std::vector<std::pair<std::string, std::string>> query;
  /// JSON body; null = no JSON body.
  boost::json::value body;
  /// Raw body sent as is (with `content_type`) when `body` is null.
  std::string raw_body;
  /// Content-Type of `raw_body`; default application/json.
  std::string content_type;
  /// multipart/form-data parts; when non-empty they are the body.
  std::vector<form_part> form;
  /// Extra HTTP headers.
  std::vector<std::pair<std::string, std::string>> headers;
  /// Deadline of one exchange; default client_options::timeout.
  std::optional<std::chrono::milliseconds> timeout;
};

/// Completion of a request: WeChat's parsed JSON (errcode 0 or absent), or
/// the error. Runs exactly once on an I/O thread (or the calling thread when
/// the request fails before any I/O). Must not block.
using json_callback = std::function<void(result<boost::json::value>)>;

/// A media file for upload.
struct media {
  /// The file name sent in the form (WeChat checks its extension).
  std::string filename;
  /// The part's Content-Type; guessed from the extension when empty.
  std::string content_type;
  /// The raw bytes.
  std::string data;

  /// Reads `path` into memory.
  static result<media> from_file(const std::string& path, std::string content_type = {});

  /// Wraps bytes already in memory.
  static media from_bytes(std::string filename, std::string data, std::string content_type = {});
};

/// A thread-safe WeChat API client bound to one token source. Usable from
/// plain C++: asynchronous (callback) and blocking forms. The blocking forms
/// must not be called from a callback of this client or of its token source.
class client {
public:
  client(std::shared_ptr<token_source> source, client_options opts = {});
  /// Completes outstanding requests (with "shutting_down" if necessary)
  /// before returning; never destroy a client from one of its callbacks.
  ~client();

  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Calls `method` on `path_or_url` (a path below api_base, or a full URL)
  /// with the token the account needs appended; on 40001 / 40014 / 42001 the
  /// failing token is reported to the source and the call is retried once.
  void async_request(std::string method, std::string path_or_url, request_options opts,
                     json_callback cb);

  /// Blocking form of async_request().
  result<boost::json::value> request(std::string method, std::string path_or_url,
                                     request_options opts = {});

  /// Uploads temporary media: POST /cgi-bin/media/upload?type=`type` with
  /// the file as form field "media". `type`: image, voice, video or thumb.
  void async_upload_media(std::string type, media file, json_callback cb);

  /// Blocking form of async_upload_media().
  result<boost::json::value> upload_media(std::string type, media file);

  /// Adds permanent material: POST /cgi-bin/material/add_material?type=`type`;
  /// `description` (videos: {"title","introduction"}) goes in the form field
  /// "description" when not null.
  void async_add_material(std::string type, media file, boost::json::value description,
                          json_callback cb);

  /// Blocking form of async_add_material().
  result<boost::json::value> add_material(std::string type, media file,
                                          boost::json::value description = nullptr);

  /// The token source.
  const std::shared_ptr<token_source>& source() const;

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

/// The values a page passes to `wx.config` besides appId.
struct jssdk_signature {
  std::string noncestr;
  int64_t timestamp = 0;
  /// Lowercase hex SHA-1.
  std::string signature;
};

/// JS-SDK signature of `url` with a jsapi ticket: the `#fragment` is
/// stripped; an empty `noncestr` becomes 16 random alphanumerics and
/// `timestamp == 0` means now.
jssdk_signature sign_jssdk(std::string_view ticket, std::string_view url,
                           std::string noncestr = {}, int64_t timestamp = 0);

/// The signed values of a card extension (`cardExt`).
struct card_signature {
  std::string nonce_str;
  int64_t timestamp = 0;
  /// Lowercase hex SHA-1.
  std::string signature;
};

/// Card signature: SHA-1 over the byte-sorted concatenation of `values`
/// (api_ticket, card_id, code, openid, ...; empty ones skipped), nonce_str
/// and timestamp. Empty `nonce_str` = random, `timestamp == 0` = now.
card_signature sign_card(std::vector<std::string> values, std::string nonce_str = {},
                         int64_t timestamp = 0);

/// Whether `errcode` means "the token was rejected; refresh and retry once".
bool is_token_error(int errcode);

} // namespace wh::client
