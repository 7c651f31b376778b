"""wabot: a WhatsApp daemon that gives every customer a permanent AI agent of their own."""
