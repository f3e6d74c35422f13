"""camgate adapter for ONVIF devices (Profile S/T/G) and a SOAP simulator of one."""
