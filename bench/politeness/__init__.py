"""Host politeness: three tenants' ffuf runs against one shared host, seen from the host, with it off and on."""
