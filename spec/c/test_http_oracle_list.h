/* rd_http against http-parser 2.9.4 (test_http_oracle.c). */
T(http_oracle_agrees_on_generated_requests)
T(http_oracle_agrees_on_generated_pipelines)
