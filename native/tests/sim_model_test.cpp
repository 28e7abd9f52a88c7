// Simulated model files: the header parser and reading a file's first line.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "orchard/backends/sim_model.h"

namespace orchard::sim {
namespace {

// A file in the test's temporary directory, removed afterwards.
class TempFile {
 public:
  explicit TempFile(const std::string& contents) {
    char pattern[] = "/tmp/orchard-sim-model-XXXXXX";
    const int fd = ::mkstemp(pattern);
    EXPECT_GE(fd, 0);
    ::close(fd);
    path_ = pattern;
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << contents;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(SimHeader, FullHeader) {
  const SimHeaderParse p = parse_sim_header(
      R"({"orchard_sim_model":1,"name":"demo 7B","decode_tok_s":12.5,"prefill_tok_s":300,"load_ms":2e2,"fail_load":false,"token_offset":3})");
  ASSERT_TRUE(p.header) << p.error;
  EXPECT_TRUE(p.error.empty());
  EXPECT_EQ(p.header->name, std::optional<std::string>("demo 7B"));
  EXPECT_EQ(p.header->decode_tok_s, std::optional<double>(12.5));
  EXPECT_EQ(p.header->prefill_tok_s, std::optional<double>(300));
  EXPECT_EQ(p.header->load_ms, std::optional<int>(200));
  EXPECT_FALSE(p.header->fail_load);
  EXPECT_EQ(p.header->token_offset, 3);
}

TEST(SimHeader, OnlyTheMarkerIsRequiredAndUnknownFieldsAreIgnored) {
  const SimHeaderParse p = parse_sim_header("{\"orchard_sim_model\":1,\"comment\":\"later field\"}\r");
  ASSERT_TRUE(p.header) << p.error;
  EXPECT_FALSE(p.header->name);
  EXPECT_FALSE(p.header->decode_tok_s);
  EXPECT_FALSE(p.header->prefill_tok_s);
  EXPECT_FALSE(p.header->load_ms);
  EXPECT_FALSE(p.header->fail_load);
  EXPECT_EQ(p.header->token_offset, 0);
}

TEST(SimHeader, FailLoadIsParsed) {
  const SimHeaderParse p = parse_sim_header(R"({"orchard_sim_model":1,"fail_load":true})");
  ASSERT_TRUE(p.header) << p.error;
  EXPECT_TRUE(p.header->fail_load);
}

TEST(SimHeader, MissingMarkerIsNotASimModel) {
  for (const char* line : {R"({"name":"x"})", "[1,2,3]", "\"orchard_sim_model\"", "", "\x7f" "ELF\x02\x01",
                           "PK\x03\x04 not json"}) {
    const SimHeaderParse p = parse_sim_header(line);
    EXPECT_FALSE(p.header) << line;
    EXPECT_EQ(p.error, "not a simulated model (the first line is not an orchard_sim_model header)") << line;
  }
}

TEST(SimHeader, MalformedHeadersNameTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"orchard_sim_model":1,"name":"x",})", "bad simulated model header: the first line is not valid JSON"},
      {R"({"orchard_sim_model":1} trailing)", "bad simulated model header: the first line is not valid JSON"},
      {R"({"orchard_sim_model":"1"})", "bad simulated model header: \"orchard_sim_model\" must be 1"},
      {R"({"orchard_sim_model":0})", "bad simulated model header: \"orchard_sim_model\" must be 1"},
      {R"({"orchard_sim_model":2})", "unsupported simulated model format 2 (this runner reads format 1)"},
      {R"({"orchard_sim_model":1,"name":""})",
       "bad simulated model header: \"name\" must be a string of 1 to 128 characters"},
      {R"({"orchard_sim_model":1,"name":7})",
       "bad simulated model header: \"name\" must be a string of 1 to 128 characters"},
      {R"({"orchard_sim_model":1,"name":")" + std::string(129, 'n') + "\"}",
       "bad simulated model header: \"name\" must be a string of 1 to 128 characters"},
      {R"({"orchard_sim_model":1,"decode_tok_s":0})", "bad simulated model header: \"decode_tok_s\" must be a number > 0"},
      {R"({"orchard_sim_model":1,"decode_tok_s":"20"})",
       "bad simulated model header: \"decode_tok_s\" must be a number > 0"},
      {R"({"orchard_sim_model":1,"prefill_tok_s":-1})",
       "bad simulated model header: \"prefill_tok_s\" must be a number > 0"},
      {R"({"orchard_sim_model":1,"load_ms":1.5})",
       "bad simulated model header: \"load_ms\" must be an integer from 0 to 600000"},
      {R"({"orchard_sim_model":1,"load_ms":600001})",
       "bad simulated model header: \"load_ms\" must be an integer from 0 to 600000"},
      {R"({"orchard_sim_model":1,"fail_load":"yes"})", "bad simulated model header: \"fail_load\" must be true or false"},
      {R"({"orchard_sim_model":1,"token_offset":256})",
       "bad simulated model header: \"token_offset\" must be an integer from 0 to 255"},
      {R"({"orchard_sim_model":1,"token_offset":-1})",
       "bad simulated model header: \"token_offset\" must be an integer from 0 to 255"},
      {R"({"orchard_sim_model":1,"token_offset":null})",
       "bad simulated model header: \"token_offset\" must be an integer from 0 to 255"},
  };
  for (const auto& [line, message] : cases) {
    const SimHeaderParse p = parse_sim_header(line);
    EXPECT_FALSE(p.header) << line;
    EXPECT_EQ(p.error, message) << line;
  }
}

TEST(SimModelFile, ReadsTheFirstLineAndIgnoresThePadding) {
  std::string contents = R"({"orchard_sim_model":1,"name":"padded","token_offset":5})";
  contents += "\n";
  contents += std::string(3 * kSimHeaderMaxBytes, '\xAB');  // padding, newline-free
  const TempFile file(contents);
  const SimHeaderParse p = read_sim_model(file.path());
  ASSERT_TRUE(p.header) << p.error;
  EXPECT_EQ(p.header->name, std::optional<std::string>("padded"));
  EXPECT_EQ(p.header->token_offset, 5);
}

TEST(SimModelFile, AHeaderOnlyFileNeedsNoNewline) {
  const TempFile file(R"({"orchard_sim_model":1})");
  EXPECT_TRUE(read_sim_model(file.path()).header);
}

TEST(SimModelFile, AHeaderLineFillingTheWholeLimitIsAccepted) {
  // The header plus its newline take exactly kSimHeaderMaxBytes.
  const std::string start = R"({"orchard_sim_model":1,"pad":")";
  const std::string end = "\"}";
  const std::string line = start + std::string(kSimHeaderMaxBytes - 1 - start.size() - end.size(), 'p') + end;
  ASSERT_EQ(line.size() + 1, kSimHeaderMaxBytes);
  const TempFile file(line + "\n" + std::string(100, 'x'));
  const SimHeaderParse p = read_sim_model(file.path());
  EXPECT_TRUE(p.header) << p.error;
}

TEST(SimModelFile, OversizeFirstLineIsRefused) {
  const std::string start = R"({"orchard_sim_model":1,"pad":")";
  const TempFile file(start + std::string(kSimHeaderMaxBytes, 'p') + "\"}\nrest");
  const SimHeaderParse p = read_sim_model(file.path());
  EXPECT_FALSE(p.header);
  EXPECT_EQ(p.error, file.path() +
                         ": not a simulated model (the first line is not an orchard_sim_model header); no line "
                         "break in the first 4096 bytes (a header line must fit in them)");
}

TEST(SimModelFile, ErrorsNameTheFile) {
  const SimHeaderParse missing = read_sim_model("/nonexistent/orchard/model.sim");
  EXPECT_FALSE(missing.header);
  EXPECT_EQ(missing.error, "no model file at /nonexistent/orchard/model.sim");

  const SimHeaderParse directory = read_sim_model("/tmp");
  EXPECT_FALSE(directory.header);
  EXPECT_EQ(directory.error, "/tmp is not a regular file");

  const TempFile empty("");
  EXPECT_EQ(read_sim_model(empty.path()).error,
            empty.path() + ": not a simulated model (the first line is not an orchard_sim_model header); the file is empty");

  const TempFile pte(std::string("\x00\x00\x00\x00" "ET12", 8) + "\n" + std::string(64, '\0'));
  EXPECT_EQ(read_sim_model(pte.path()).error,
            pte.path() + ": not a simulated model (the first line is not an orchard_sim_model header)");

  const TempFile bad(R"({"orchard_sim_model":1,"decode_tok_s":0})" "\npadding");
  EXPECT_EQ(read_sim_model(bad.path()).error,
            bad.path() + ": bad simulated model header: \"decode_tok_s\" must be a number > 0");
}

}  // namespace
}  // namespace orchard::sim
