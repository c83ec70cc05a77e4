mod check_config;
