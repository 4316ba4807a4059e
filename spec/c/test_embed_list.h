/* The embedding tests (rd_embed_tests): a host program's use of reactor.h. */
T(embed_runs_on_the_hosts_loop)
T(embed_two_reactors_in_one_process)
T(embed_log_goes_to_the_hosts_function)
T(embed_preload_needs_no_reactor_so)
