"""Devices this project did not write, each in its own process: a pyModbusTCP server, a pysparkplug edge
node (in its own virtualenv: pysparkplug pins paho-mqtt < 2, pumpwatch's aiomqtt needs ≥ 2), and
`mosquitto_pub`. The scripts here run in those processes; `venv.py` builds the pysparkplug environment."""
