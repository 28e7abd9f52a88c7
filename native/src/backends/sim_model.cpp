#include "orchard/backends/sim_model.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "orchard/utf8.h"

namespace orchard::sim {
namespace {

using json = nlohmann::json;

constexpr const char* kMarker = "orchard_sim_model";
constexpr const char* kNotSimModel = "not a simulated model (the first line is not an orchard_sim_model header)";
constexpr int kMaxLoadMs = 600000;

SimHeaderParse failure(std::string message) {
  SimHeaderParse result;
  result.error = std::move(message);
  return result;
}

std::string bad(const std::string& field, const std::string& rule) {
  return "bad simulated model header: \"" + field + "\" must be " + rule;
}

bool is_integral(double value) { return std::isfinite(value) && std::floor(value) == value; }

// A positive finite rate, or an error message.
std::optional<std::string> read_rate(const json& object, const char* field, std::optional<double>* out) {
  auto it = object.find(field);
  if (it == object.end()) return std::nullopt;
  if (!it->is_number()) return bad(field, "a number > 0");
  const double value = it->get<double>();
  if (!std::isfinite(value) || value <= 0) return bad(field, "a number > 0");
  *out = value;
  return std::nullopt;
}

// An integer in [min, max] (integral JSON numbers such as 2e2 count), or an error message.
std::optional<std::string> read_int(const json& object, const char* field, int min, int max, int* out) {
  auto it = object.find(field);
  if (it == object.end()) return std::nullopt;
  const std::string rule = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (!it->is_number()) return bad(field, rule);
  const double value = it->get<double>();
  if (!is_integral(value) || value < min || value > max) return bad(field, rule);
  *out = static_cast<int>(value);
  return std::nullopt;
}

}  // namespace

SimHeaderParse parse_sim_header(const std::string& raw) {
  std::string line = raw;
  if (!line.empty() && line.back() == '\r') line.pop_back();

  const json value = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    // Something that tries to be a header but is broken deserves a precise answer.
    if (line.find(std::string("\"") + kMarker + "\"") != std::string::npos) {
      return failure("bad simulated model header: the first line is not valid JSON");
    }
    return failure(kNotSimModel);
  }
  if (!value.is_object() || !value.contains(kMarker)) return failure(kNotSimModel);

  const json& marker = value.at(kMarker);
  if (!marker.is_number() || !is_integral(marker.get<double>()) || marker.get<double>() < 1) {
    return failure(bad(kMarker, std::to_string(kSimModelFormat)));
  }
  if (marker.get<double>() != kSimModelFormat) {
    return failure("unsupported simulated model format " + marker.dump() + " (this runner reads format " +
                   std::to_string(kSimModelFormat) + ")");
  }

  SimModelHeader header;
  if (auto it = value.find("name"); it != value.end()) {
    const std::string rule = "a string of 1 to " + std::to_string(kSimNameMaxLength) + " characters";
    if (!it->is_string()) return failure(bad("name", rule));
    const auto& name = it->get_ref<const std::string&>();
    const std::size_t length = utf16_length(name);
    if (length < 1 || length > kSimNameMaxLength) return failure(bad("name", rule));
    header.name = name;
  }
  if (auto error = read_rate(value, "decode_tok_s", &header.decode_tok_s)) return failure(*error);
  if (auto error = read_rate(value, "prefill_tok_s", &header.prefill_tok_s)) return failure(*error);
  int load_ms = 0;
  if (value.contains("load_ms")) {
    if (auto error = read_int(value, "load_ms", 0, kMaxLoadMs, &load_ms)) return failure(*error);
    header.load_ms = load_ms;
  }
  if (auto it = value.find("fail_load"); it != value.end()) {
    if (!it->is_boolean()) return failure(bad("fail_load", "true or false"));
    header.fail_load = it->get<bool>();
  }
  if (auto error = read_int(value, "token_offset", 0, kSimMaxTokenOffset, &header.token_offset)) {
    return failure(*error);
  }

  SimHeaderParse result;
  result.header = std::move(header);
  return result;
}

SimHeaderParse read_sim_model(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return failure("no model file at " + path);
    return failure("cannot open " + path + ": " + std::strerror(errno));
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return failure(path + " is not a regular file");
  }

  // Only the header is read: the padding after it (the bulk of the file) never is.
  std::string head(kSimHeaderMaxBytes, '\0');
  std::size_t got = 0;
  while (got < head.size()) {
    const ssize_t n = ::read(fd, head.data() + got, head.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = std::strerror(errno);
      ::close(fd);
      return failure("cannot read " + path + ": " + why);
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  head.resize(got);

  if (got == 0) return failure(path + ": " + kNotSimModel + "; the file is empty");
  const std::size_t newline = head.find('\n');
  std::string line;
  if (newline != std::string::npos) {
    line = head.substr(0, newline);
  } else if (got < kSimHeaderMaxBytes) {
    line = head;  // the whole file, read to its end: a header without a final newline
  } else {
    return failure(path + ": " + kNotSimModel + "; no line break in the first " +
                   std::to_string(kSimHeaderMaxBytes) + " bytes (a header line must fit in them)");
  }

  SimHeaderParse parsed = parse_sim_header(line);
  if (!parsed.header) parsed.error = path + ": " + parsed.error;
  return parsed;
}

}  // namespace orchard::sim
